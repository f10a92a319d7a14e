"""The model zoo and what runs it (lesson 03).

``models`` (the three MNIST models, training, ``load_or_train``), ``cache`` and
``shipped`` (trained weights, verified by sha256), ``keras2`` (the one place that picks
Keras 2 for TensorFlow and TFMOT) and ``keras3`` (Keras 3 models rebuilt in tf_keras),
``seed``, ``progress``, ``quiet`` (TensorFlow's native chatter), ``environment``,
``introspect`` (a Keras model's weight layers and channel ranges) and ``distribute``
(``tf.distribute`` strategies).
"""
