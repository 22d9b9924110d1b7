"""Training of the (binarized) SR models: ``python -m train --model NAME [--field value ...]``.

Modules: ``presets`` (TrainConfig and per-model presets), ``data`` (random HR crops, LR on the
fly), ``distill`` (DBT), ``ema``, ``checkpoint`` (resumable checkpoints, exports) and ``loop``
(the training loop). ``python -m train --help`` lists every field.
"""
