"""Mask propagation through a video or along a volume's slice axis.

Built on the image engine only: the encoder's 1x256x64x64 embeddings are the
keys of a space-time memory (:mod:`.readout`), and the prompt decoder turns
the memory's read-out into a mask (:mod:`.decode`). :mod:`.rounds` says which
frames a round propagates to (forward and backward from the frame annotated
in this round, up to the nearest frame annotated before), :mod:`.fusion`
merges a new round's masks with an earlier round's, and :mod:`.propagator`
runs it all for one object (:class:`~.propagator.Track`); :mod:`.tracks` holds
several objects under stable ids and resolves their overlaps per pixel.

Geometry (:mod:`.grid`): the encoder sees a frame resized so its long side is
1024 and padded bottom/right; one embedding cell covers 16x16 pixels of that
padded frame, one low-res logit 4x4. Everything here is plain NumPy.
"""
