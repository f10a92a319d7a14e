"""TensorFlow, Keras 2 (tf_keras), TFMOT and LiteRT: models, conversion, interpreter, QAT, debugging."""
