"""Offline training of the decoder side of the SAM-style model on CPU (needs PyTorch: ``clickmask[learn]``).

- :mod:`~clickmask.training.torch_decoder`: ``TorchSamDecoder.from_onnx`` (a differentiable
  twin of the ONNX prompt decoder) and ``decode`` (mirror of ``SamOnnxPredictor.decode_candidates``).
- :mod:`~clickmask.training.loop`: ``TrainSample``, ``ClickConfig``, ``train_steps`` (offline and
  online use), ``evaluate_loss``.
- :mod:`~clickmask.training.simulate`, :mod:`~clickmask.training.losses`,
  :mod:`~clickmask.training.suem`: click simulation, NFL/BCE and the Iterative Click Loss, SUEM copy-paste.
- :mod:`~clickmask.training.offline`: ``clickmask train``; :mod:`~clickmask.training.checkpoint`:
  adapter files with the base model's checksums.

The adapter module itself is :mod:`clickmask.learning.adapter`; inference with it,
:mod:`clickmask.learning.adapted`.
"""
