"""How the files beside this script were made: Keras models of AlexNet's layer types (and a global
average pool) converted by tf2onnx, a second exporter for tests/test_onnx.py, with Keras's own outputs
on a seeded input (NAME_x.npy, NAME_y.npy). TensorFlow is not a dependency of minigrad, not even of its
tests; to make them again, in a virtual environment of its own (Python 3.11):

    pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1
    python tests/data/tf2onnx/export.py tests/data/tf2onnx

tf2onnx writes the NHWC input with a Transpose to NCHW after it, and another before the Flatten;
Keras's grouped Conv2D does not convert (tf2onnx 1.16: PartitionedCall), so the convolutions here
have groups=1. Only alexnet_like at opsets 9 and 17 and global_average at 13 are kept.
"""
import sys
import numpy as np
import tensorflow as tf
import tf2onnx

out = sys.argv[1]
tf.random.set_seed(0)
L = tf.keras.layers


def lrn(x):
    return tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)


def alexnet_like():
    inputs = tf.keras.Input((32, 32, 3))
    x = L.ZeroPadding2D(((1, 0), (0, 2)))(inputs)
    x = L.Conv2D(16, 4, strides=2, padding="same", activation="relu")(x)
    x = L.Lambda(lrn)(x)
    x = L.MaxPool2D(3, 2)(x)
    x = L.Conv2D(24, 3, padding="same", activation="relu")(x)
    x = L.MaxPool2D(3, 2, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.Flatten()(x)
    x = L.Dense(32, activation="relu")(x)
    x = L.Dropout(0.5)(x)
    x = L.Dense(10)(x)
    x = L.Softmax()(x)
    return tf.keras.Model(inputs, x)


def global_average():
    inputs = tf.keras.Input((20, 18, 3))
    x = L.Conv2D(8, 3, padding="same")(inputs)
    x = L.LeakyReLU(0.1)(x)
    x = L.AveragePooling2D(2)(x)
    x = L.Conv2D(16, 3, padding="valid", activation="tanh")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10, activation="sigmoid")(x)
    return tf.keras.Model(inputs, x)


for name, make in (("alexnet_like", alexnet_like), ("global_average", global_average)):
    model = make()
    for layer in model.layers:           # every weight and bias away from its initial value (biases: 0)
        layer.set_weights([(np.random.uniform(0.5, 2, w.shape) if isinstance(layer, L.BatchNormalization) else
                            w + np.random.uniform(-0.1, 0.1, w.shape)).astype(np.float32) for w in layer.get_weights()])
    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="x"),)
    for opset in (9, 13, 17):
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset, output_path=f"{out}/{name}_{opset}.onnx")
    x = np.random.default_rng(0).standard_normal((3, *model.input_shape[1:])).astype(np.float32) * 5
    np.save(f"{out}/{name}_x.npy", x)
    np.save(f"{out}/{name}_y.npy", model(x, training=False).numpy())
