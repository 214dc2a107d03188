"""Distributed DDPM training in a fresh process, for tests/test_distribute.py.

Two logical CPU devices, and the collective ops of a
`MultiWorkerMirroredStrategy`, must be configured before TensorFlow initialises
its devices, which a pytest process that already ran other tests has done. The
tests therefore run this script in a subprocess and read what it writes:

    python tests/distribute_worker.py mirrored OUT.json
    python tests/distribute_worker.py mirrored_loss_scaling OUT.json
    TF_CONFIG='{...}' python tests/distribute_worker.py multiworker OUT.npz [--compare]

`mirrored` splits the CPU into two logical devices and compares one
`MirroredStrategy` run with a single-device run on the same global batches,
the same initial weights and the same t and ε per example; it also samples
from the trained model and draws the real noise on each replica;
`mirrored_loss_scaling` skips an overflowing loss-scaled step. `multiworker` is one worker of a
`MultiWorkerMirroredStrategy` cluster described by `TF_CONFIG`: a few steps
with the real noise (and, with `--compare`, the comparison with one device).
Both report measured facts; the tests decide what they must be.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

IMAGE_SHAPE = (8, 8, 1)
TIMESTEPS = 20
GLOBAL_BATCH = 8
STEPS = 3
LEARNING_RATE = 0.05


_START = time.perf_counter()


def log(message):
    """Progress with elapsed seconds, on stderr (the tests keep it for failures)."""
    print(f"[{time.perf_counter() - _START:6.1f} s] {message}", file=sys.stderr, flush=True)


def tiny_network():
    """A U-Net of about 5k parameters on 8x8 images."""
    import keras_ddpm

    return keras_ddpm.UNet(
        image_shape=IMAGE_SHAPE, base_channels=8, channel_multipliers=(1,),
        num_res_blocks=1, attention_resolutions=(), dropout=0.0, norm_groups=4,
    )


def training_data():
    """`STEPS` global batches of images, with one t and one ε per image."""
    rng = np.random.default_rng(0)
    count = STEPS * GLOBAL_BATCH
    images = rng.uniform(-1.0, 1.0, (count,) + IMAGE_SHAPE).astype("float32")
    t = rng.integers(0, TIMESTEPS, count).astype("int32")
    noise = rng.standard_normal((count,) + IMAGE_SHAPE).astype("float32")
    return images, t, noise


def dataset(images):
    """The images in order, batched to the global batch, sharded by data across workers."""
    data = tf.data.Dataset.from_tensor_slices(images).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)


def recording(model_class):
    """`model_class` noting the batch size each `draw_training_noise` call saw."""

    class Recording(model_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.local_batch_sizes = []  # in call order, one per replica and step

        def draw_training_noise(self, images, *args, **kwargs):
            tf.numpy_function(self._record, [tf.shape(images)[0]], tf.int32)
            return super().draw_training_noise(images, *args, **kwargs)

        def _record(self, size):
            self.local_batch_sizes.append(int(size))
            return np.int32(0)

    return Recording


def fixed_noise_ddpm_class():
    import keras_ddpm

    class FixedNoiseDDPM(recording(keras_ddpm.DDPM)):
        """A DDPM whose t and ε belong to the example, wherever it is trained.

        Each image of the batch is found in the table of training images and
        gets that image's t and ε, so a replica holding half of a global batch
        uses exactly the noise a single device uses for the same examples.
        """

        def __init__(self, *args, table=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.table = table

        def draw_training_noise(self, images, *args, **kwargs):
            super().draw_training_noise(images)  # records the batch size
            table_images, table_t, table_noise = (tf.constant(v) for v in self.table)
            distances = tf.reduce_sum(
                tf.square(images[:, None] - table_images[None]), axis=(2, 3, 4)
            )  # [b, N]
            index = tf.argmin(distances, axis=1)
            return tf.gather(table_t, index), tf.gather(table_noise, index)

    return FixedNoiseDDPM


def build(model_class, strategy=None, **kwargs):
    """A compiled tiny DDPM (under `strategy.scope()` when given)."""
    import contextlib

    import keras
    import keras_ddpm

    # The same initial weights in every process (each worker builds its own).
    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = model_class(
            tiny_network(), schedule=keras_ddpm.NoiseSchedule("linear", timesteps=TIMESTEPS),
            ema_decay=0.5, ema_warmup=False, seed=0, **kwargs,
        )
        # Plain SGD: unlike Adam, its update is proportional to the gradient,
        # so a loss summed instead of averaged over replicas would show.
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=0.9),
                      jit_compile=False)
    return model


def set_initial_weights(model, weights):
    model.network.set_weights(weights)
    model.ema_network.set_weights(weights)


def max_difference(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def replica_spread(strategy, variables):
    """Largest difference between the copies of mirrored variables on the replicas."""
    spread = 0.0
    for variable in variables:
        copies = [v.numpy() for v in strategy.experimental_local_results(variable.value)]
        spread = max([spread] + [float(np.max(np.abs(c - copies[0]))) for c in copies])
    return spread


def per_replica_draws(strategy, model, local_batch):
    """(t, ε) drawn by `draw_training_noise` on each local replica, in one step."""
    images = strategy.experimental_distribute_values_from_function(
        lambda context: tf.zeros((local_batch,) + IMAGE_SHAPE)
    )

    @tf.function
    def draw(images):
        def replica_fn(images):
            t, noise = model.draw_training_noise(images)
            replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
            return t, noise, replica_id

        return strategy.run(replica_fn, args=(images,))

    t, noise, replica_id = draw(images)
    local = strategy.experimental_local_results
    return (
        [v.numpy() for v in local(t)],
        [v.numpy() for v in local(noise)],
        [int(v) for v in local(replica_id)],
    )


# ----------------------------------------------------------------------------
# MirroredStrategy on two logical CPU devices
# ----------------------------------------------------------------------------
def mirrored_strategy():
    """A `MirroredStrategy` over the CPU split into two logical devices."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    return tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])


def run_mirrored(out_path):
    strategy = mirrored_strategy()
    import keras
    import keras_ddpm

    images, t, noise = training_data()
    fixed = fixed_noise_ddpm_class()
    results = {"replicas": strategy.num_replicas_in_sync}

    # 1. The same three steps on one device and on two replicas.
    single = build(fixed, table=(images, t, noise))
    initial = [w.numpy() for w in single.network.weights]
    mirrored = build(fixed, strategy, table=(images, t, noise))
    set_initial_weights(mirrored, initial)
    single_history = single.fit(dataset(images), epochs=1, verbose=0)
    mirrored_history = mirrored.fit(dataset(images), epochs=1, verbose=0)
    single_weights = [w.numpy() for w in single.network.weights]
    results.update(
        local_batch_sizes_single=single.local_batch_sizes,
        local_batch_sizes_mirrored=mirrored.local_batch_sizes,
        max_update=max_difference(single_weights, initial),
        max_weight_difference=max_difference(single_weights, mirrored.network.get_weights()),
        max_ema_difference=max_difference(
            [w.numpy() for w in single.ema_weights], mirrored.ema_network.get_weights()
        ),
        replica_weight_spread=replica_spread(strategy, mirrored.network.weights),
        replica_ema_spread=replica_spread(strategy, mirrored.ema_weights),
        # The step function fit ran under the strategy (keras_ddpm.backend.step_functions).
        train_function_mirrored=type(mirrored.train_function).__name__,
        iterations_single=int(single.optimizer.iterations.numpy()),
        iterations_mirrored=int(mirrored.optimizer.iterations.numpy()),
        loss_single=float(single.loss_tracker.result()),
        loss_mirrored=float(mirrored.loss_tracker.result()),
        history_loss_single=single_history.history["loss"][-1],
        history_loss_mirrored=mirrored_history.history["loss"][-1],
    )

    log("compared with one device")
    # 2. generate() on the model trained under the strategy, outside its scope
    #    (XLA, generate's default here) and inside it, against the one-device
    #    model.
    reference = single.generate(4, sampler="ddim", steps=5, seed=0, verbose=0, jit_compile=False)
    outside = mirrored.generate(4, sampler="ddim", steps=5, seed=0, verbose=0)
    with strategy.scope():
        inside = mirrored.generate(
            4, sampler="ddim", steps=5, seed=0, verbose=0, jit_compile=False
        )
    results.update(
        generate_difference=float(np.max(np.abs(outside - reference))),
        generate_scope_difference=float(np.max(np.abs(inside - outside))),
        generate_finite=bool(np.isfinite(outside).all()),
    )

    log("generated")
    # 3. The real noise draws: each replica its own t and ε.
    model = build(keras_ddpm.DDPM, strategy)
    state_before = model.seed_generator.state.numpy()
    draws_t, draws_noise, replica_ids = per_replica_draws(strategy, model, GLOBAL_BATCH // 2)
    results.update(
        replica_ids=replica_ids,
        draws_t=[v.tolist() for v in draws_t],
        draws_noise_difference=float(np.max(np.abs(draws_noise[0] - draws_noise[1]))),
        draws_noise_std=[float(v.std()) for v in draws_noise],
        seed_state_advance=(model.seed_generator.state.numpy() - state_before).tolist(),
        seed_state_spread=replica_spread(strategy, [model.seed_generator.state]),
    )

    log("drew per-replica noise")
    # 3b. Class dropout: each replica hides its own labels.
    import keras

    keras.utils.set_random_seed(0)
    with strategy.scope():
        conditional = keras_ddpm.DDPM(
            keras_ddpm.UNet(image_shape=IMAGE_SHAPE, base_channels=8, channel_multipliers=(1,),
                            num_res_blocks=1, attention_resolutions=(), norm_groups=4,
                            num_classes=3),
            seed=0, class_dropout=0.5,
        )

    @tf.function
    def dropped_labels():
        def replica_fn():
            labels = tf.zeros((64,), tf.int32)
            images = tf.zeros((64,) + IMAGE_SHAPE)
            return conditional._training_labels((images, labels), training=True)

        return strategy.run(replica_fn)

    masks = [v.numpy() == 3 for v in strategy.experimental_local_results(dropped_labels())]
    results.update(
        dropped_shares=[float(m.mean()) for m in masks],
        dropped_masks_equal=bool(np.array_equal(masks[0], masks[1])),
    )
    with open(out_path, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)


def run_mirrored_loss_scaling(out_path):
    """Loss scaling with an infinite loss on one replica only: the step is skipped on both,
    then training goes on."""
    strategy = mirrored_strategy()
    images, _, _ = training_data()
    results = loss_scale_skip(strategy, images[:GLOBAL_BATCH])
    log("loss scaling done")
    with open(out_path, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)


POISON = 0.875


def loss_scale_skip(strategy, images):
    """Three steps under a `LossScaleOptimizer`; the second overflows on one replica.

    The float32 policy keeps it quick on a CPU: the skip logic is the same as
    under mixed_float16, where tests/test_mixed_precision.py checks it on one
    device.
    """
    import keras
    import keras_ddpm

    class PoisonedDDPM(keras_ddpm.DDPM):
        """Infinite loss on a replica whose images hold the value `POISON`."""

        def diffusion_loss(self, images, *args, **kwargs):
            loss = super().diffusion_loss(images, *args, **kwargs)
            poisoned = tf.reduce_any(tf.equal(images[:, 0, 0, 0], POISON))
            return loss * tf.where(poisoned, np.inf, 1.0)

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            model = self.model
            steps.append(
                {
                    "iterations": int(model.optimizer.iterations.numpy()),
                    "scale": float(model.optimizer.dynamic_scale.numpy()),
                    "weights": model.network.get_weights(),
                    "ema": model.ema_network.get_weights(),
                    "loss": float(np.asarray(logs["loss"])),
                }
            )

    with strategy.scope():
        model = PoisonedDDPM(
            tiny_network(), schedule=keras_ddpm.NoiseSchedule("linear", timesteps=TIMESTEPS),
            ema_decay=0.5, ema_warmup=False, seed=0,
        )
        model.compile(
            optimizer=keras.optimizers.LossScaleOptimizer(
                keras.optimizers.Adam(1e-3), initial_scale=128.0
            ),
            jit_compile=False,
        )
    poisoned = images.copy()
    poisoned[-1, 0, 0, 0] = POISON  # the last example: on the second replica only
    steps = []
    model.fit(
        tf.data.Dataset.from_tensor_slices(np.stack([images, poisoned, images])),
        epochs=1, verbose=0, callbacks=[Record()],
    )
    clean, skipped, after = steps
    return {
        "skip_iterations": [step["iterations"] for step in steps],
        "skip_scale_ratio": skipped["scale"] / clean["scale"],
        "skip_weight_change": max_difference(skipped["weights"], clean["weights"]),
        "skip_ema_change": max_difference(skipped["ema"], clean["ema"]),
        "after_weight_change": max_difference(after["weights"], clean["weights"]),
        "after_finite": all(np.isfinite(w).all() for w in after["weights"] + after["ema"]),
        "after_replica_spread": replica_spread(strategy, model.network.weights),
    }


# ----------------------------------------------------------------------------
# One worker of a MultiWorkerMirroredStrategy cluster
# ----------------------------------------------------------------------------
def run_worker(out_path, compare=False):
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    # The strategy first: it configures the collective ops at start-up.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras_ddpm

    images, t, noise = training_data()
    results = {
        "task_id": strategy.cluster_resolver.task_id,
        "replicas": strategy.num_replicas_in_sync,
    }
    # 1. The real noise: a few steps, then one more draw per replica.
    model = build(recording(keras_ddpm.DDPM), strategy)
    history = model.fit(dataset(images), epochs=1, verbose=0)
    log("trained with the real noise")
    local_batch_sizes = list(model.local_batch_sizes)
    draws_t, draws_noise, replica_ids = per_replica_draws(
        strategy, model, GLOBAL_BATCH // strategy.num_replicas_in_sync
    )
    results.update(
        iterations=int(model.optimizer.iterations.numpy()),
        loss=history.history["loss"][-1],
        local_batch_sizes=local_batch_sizes,
        replica_id=replica_ids[0],
    )
    arrays = {"draw_t": draws_t[0], "draw_noise": draws_noise[0]}
    arrays.update({f"weight_{i}": w for i, w in enumerate(model.network.get_weights())})
    arrays.update({f"ema_{i}": w for i, w in enumerate(model.ema_network.get_weights())})
    if compare:
        # 2. Same t and ε per example: the cluster against one device.
        fixed = fixed_noise_ddpm_class()
        single = build(fixed, table=(images, t, noise))
        initial = single.network.get_weights()
        distributed = build(fixed, strategy, table=(images, t, noise))
        set_initial_weights(distributed, initial)
        single.fit(dataset(images), epochs=1, verbose=0)
        distributed.fit(dataset(images), epochs=1, verbose=0)
        log("trained on the same noise as one device")
        results.update(
            max_update=max_difference(single.network.get_weights(), initial),
            max_weight_difference=max_difference(
                single.network.get_weights(), distributed.network.get_weights()
            ),
            max_ema_difference=max_difference(
                single.ema_network.get_weights(), distributed.ema_network.get_weights()
            ),
            loss_single=float(single.loss_tracker.result()),
            loss_distributed=float(distributed.loss_tracker.result()),
            compare_local_batch_sizes=distributed.local_batch_sizes,
        )
        arrays.update(
            {f"fixed_{i}": w for i, w in enumerate(distributed.network.get_weights())}
        )
    np.savez(out_path, results=json.dumps(results), **arrays)


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "mirrored":
        run_mirrored(out)
    elif mode == "mirrored_loss_scaling":
        run_mirrored_loss_scaling(out)
    else:
        run_worker(out, compare="--compare" in sys.argv[3:])
