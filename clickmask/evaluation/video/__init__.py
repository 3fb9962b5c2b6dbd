"""The DAVIS interactive benchmark with clicks (CiVOS's protocol), for ``clickmask eval-video``.

:mod:`.metrics` J, F, J&F and R-AUC-J&F; :mod:`.data` the video datasets;
:mod:`.protocol` the robot user and the rounds; :mod:`.report` the summary.
"""
