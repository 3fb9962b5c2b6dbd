"""Training the decoder side of the SAM-style model on CPU.

- :mod:`~clickmask.training.torch_decoder`: ``TorchSamDecoder.from_onnx`` (a differentiable
  twin of the ONNX prompt decoder) and ``decode`` (mirror of ``SamOnnxPredictor.decode_candidates``).
- :mod:`~clickmask.learning.adapter`: ``EmbeddingAdapter`` (identity-initialised residual 1x1 conv
  on the image embedding), ``apply_adapter`` (NumPy, before the ONNX decoder), bytes round trip.
- :mod:`~clickmask.training.loop`: ``TrainSample``, ``ClickConfig``, ``train_steps`` (offline and
  online use), ``evaluate_loss``.
- :mod:`~clickmask.training.simulate`, :mod:`~clickmask.training.losses`,
  :mod:`~clickmask.training.suem`: click simulation, NFL/BCE and the Iterative Click Loss, SUEM copy-paste.
- :mod:`~clickmask.training.offline`: ``clickmask train``; :mod:`~clickmask.training.checkpoint`;
  :mod:`~clickmask.learning.adapted`: ``AdaptedSamPredictor`` / ``load_adapted_predictor`` for inference.
"""
