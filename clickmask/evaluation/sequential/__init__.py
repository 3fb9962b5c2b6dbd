"""The sequential benchmark (SIIS): each category's objects annotated in a row, learning as the app does.

- :mod:`.sequences`: the per-category sequences of COCO128 (instances.json) and of video datasets (DAVIS).
- :mod:`.runner`: the robot user over a sequence, with the app's proposals, OPO and first-click memory.
- :mod:`.online`: OPO for the runner, the app's trainer run synchronously.
- :mod:`.benchmark`: ``clickmask eval --sequential``; :mod:`.report`: JSON report, table, paired comparison.
"""
