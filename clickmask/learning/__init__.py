"""What the app learns per category while the user annotates (SIIS), shared with the sequential benchmark.

- :mod:`.click_bank`: first-click features of finished objects (ICP's click bank).
- :mod:`.object_map`: a per-category linear discriminant on the embedding (proposals, mask prior).
- :mod:`.proposal`: the proposal the app shows: from the object map, else the bank's peaks checked by segmenting them.
- :mod:`.granularity`: which first-click mask (part or whole) a category wants.
- :mod:`.opo`: OPO's settings and gate (no PyTorch); :mod:`.trainer`: the one OPO trainer (PyTorch).
- :mod:`.adapter`: the embedding adapter module and its bytes (PyTorch).
- :mod:`.adapted`: the predictor that applies an adapter's affine map before the ONNX decoder (NumPy).

Plain NumPy where possible; PyTorch only in :mod:`.adapter` and :mod:`.trainer`.
"""
