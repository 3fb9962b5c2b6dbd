"""Sequential interactive segmentation (SIIS): objects of one category annotated in a row.

- :mod:`~clickmask.sequential.click_bank`: Initial Click Proposal (ICP).
- :mod:`~clickmask.sequential.sequences`: the benchmark's per-category sequences.
- :mod:`~clickmask.sequential.runner`: the robot user over a sequence (baseline / +ICP / +OPO).
- :mod:`~clickmask.sequential.report`: JSON report and tables.
"""
