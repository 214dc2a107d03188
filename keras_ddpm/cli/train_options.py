"""`keras-ddpm train`'s options: the command line of `keras_ddpm.cli.train`, in groups.

`add_train_arguments` fills the verb's parser; `train.add_parser` creates it and names the
functions it runs. The defaults are the quick-start U-Net on the embedded digits
(`runs.DEFAULTS`, as `examples/train_digits.py`).
"""

from keras_ddpm.cli.common import JIT_CHOICES
from keras_ddpm.cli.common import add_seed
from keras_ddpm.cli.common import int_list
from keras_ddpm.cli.common import name_list
from keras_ddpm.cli.common import nonnegative_int
from keras_ddpm.cli.common import positive_int
from keras_ddpm.cli.runs import DEFAULTS
from keras_ddpm.cli.runs import MODEL_DEFAULTS
from keras_ddpm.cli.runs import STRATEGIES
from keras_ddpm.cli.sampling_args import sampler_help
from keras_ddpm.samplers import registry
from keras_ddpm.schedule_math import KINDS



def epoch_or_batches(text):
    """`--backup-every`: "epoch" or a positive number of batches."""
    return text if text == "epoch" else positive_int(text)


def add_train_arguments(parser):
    """Adds every `train` option to `parser`: output, data, model, fine-tuning, fit, sample grids."""
    parser.add_argument(
        "--output",
        default="outputs/ddpm",
        help="run directory: config.json, model.keras, samples/, logs/, backup/ "
        "(default: %(default)s)",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="digits",
        help="'digits' (embedded, default), 'tfds:NAME' (e.g. tfds:cifar10; downloads) "
        "or 'folder:PATH' (a folder of images, needs --image-size)",
    )
    data.add_argument("--split", default="train", help="TFDS split (default: %(default)s)")
    data.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        help="resize images to this height and width (default: the dataset's size)",
    )
    data.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=3,
        help="channels of folder images (default: %(default)s)",
    )
    data.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave out image files of a folder that cannot be read (default: stop, naming "
        "the first one)",
    )
    data.add_argument(
        "--random-flip",
        action="store_true",
        help="flip TFDS or folder images horizontally at random",
    )
    net = parser.add_argument_group("model (defaults: the quick-start U-Net)")
    net.add_argument(
        "--preset",
        default=None,
        help="a keras_ddpm.unet.PRESETS name, e.g. ddpm_cifar10; the options below override it",
    )
    net.add_argument(
        "--base-channels",
        type=positive_int,
        default=None,
        help=f"(default: {DEFAULTS['base_channels']})",
    )
    net.add_argument(
        "--channel-multipliers",
        type=int_list,
        default=None,
        help="comma-separated, one per resolution (default: 1,2)",
    )
    net.add_argument(
        "--num-res-blocks",
        type=positive_int,
        default=None,
        help=f"(default: {DEFAULTS['num_res_blocks']})",
    )
    net.add_argument(
        "--attention-resolutions",
        type=int_list,
        default=None,
        help="comma-separated feature-map sizes with self-attention (default: 4)",
    )
    net.add_argument("--dropout", type=float, default=None, help="(default: 0.0)")
    net.add_argument(
        "--norm-groups",
        type=positive_int,
        default=None,
        help=f"GroupNormalization groups (default: {DEFAULTS['norm_groups']})",
    )
    net.add_argument(
        "--schedule",
        default=None,
        choices=KINDS,
        help=f"noise schedule (default: {MODEL_DEFAULTS['schedule']})",
    )
    net.add_argument(
        "--timesteps",
        type=positive_int,
        default=None,
        help=f"diffusion steps T (default: {MODEL_DEFAULTS['timesteps']})",
    )
    net.add_argument(
        "--ema-decay", type=float, default=None, help=f"(default: {MODEL_DEFAULTS['ema_decay']})"
    )
    net.add_argument(
        "--conditional",
        action="store_true",
        help="train a class-conditional model on the dataset's labels, for classifier-free "
        "guidance (`sample --label 7 --guidance 3`)",
    )
    net.add_argument(
        "--num-classes",
        type=positive_int,
        default=None,
        help="classes of a --conditional model (default: read from the dataset)",
    )
    net.add_argument(
        "--class-dropout",
        type=float,
        default=None,
        help="share of labels replaced by the null label while training a --conditional "
        f"model (default: {MODEL_DEFAULTS['class_dropout']})",
    )
    tune = parser.add_argument_group("fine-tuning")
    tune.add_argument(
        "--from",
        dest="from_model",
        metavar="MODEL",
        default=None,
        help="start from a trained model (a .keras file, a train folder, a diffusers folder or "
        "a hub id): its network, schedule, EMA and classes, so none of the model options "
        "above; the images must have its size",
    )
    tune.add_argument(
        "--lora-rank",
        type=positive_int,
        default=None,
        help="with --from: train a low-rank update of rank R of the model's kernels, all "
        "else frozen (LoRA; a fraction of the optimizer memory; default: train every weight)",
    )
    tune.add_argument(
        "--lora-alpha",
        type=float,
        default=None,
        help="with --lora-rank: the update is scaled by alpha/R (default: R)",
    )
    tune.add_argument(
        "--lora-layers",
        type=name_list,
        default=None,
        help="with --lora-rank: comma-separated layer names or paths to adapt, e.g. "
        "q,k,v,proj_out (default: every Dense, Conv2D and Embedding layer)",
    )
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=positive_int, default=40, help="(default: %(default)s)")
    fit.add_argument("--batch-size", type=positive_int, default=128, help="(default: %(default)s)")
    fit.add_argument(
        "--learning-rate", type=float, default=2e-3, help="Adam's (default: %(default)s)"
    )
    fit.add_argument(
        "--warmup-steps",
        type=nonnegative_int,
        default=0,
        help="linear learning-rate warm-up steps (the DDPM paper used 5000; default: 0)",
    )
    fit.add_argument(
        "--clipnorm",
        type=float,
        default=None,
        help="clip the global gradient norm (the DDPM paper used 1.0; default: none)",
    )
    fit.add_argument(
        "--mixed-precision",
        default="float32",
        choices=("float32", "mixed_float16", "mixed_bfloat16"),
        help="Keras dtype policy; on a CPU, mixed_bfloat16 pays only with AVX512_BF16 or AMX "
        "instructions and is slower than float32 without them (default: %(default)s)",
    )
    fit.add_argument(
        "--jit-compile",
        default="auto",
        choices=JIT_CHOICES,
        help="compile the training step and the sampling loop of the grids with XLA "
        "(default: auto, Keras' choice for training and generate's for sampling)",
    )
    fit.add_argument(
        "--strategy",
        default="default",
        choices=STRATEGIES,
        help="tf.distribute strategy: 'mirrored' (every GPU of this host) or 'multiworker' "
        "(several hosts; reads TF_CONFIG; workers other than the chief write to "
        "OUTPUT/worker_N); --batch-size is the global batch (default: %(default)s)",
    )
    fit.add_argument(
        "--backup-every",
        type=epoch_or_batches,
        default="epoch",
        help="back the run up after every epoch ('epoch') or every N batches; a killed run "
        "re-run with the same command resumes after the last backup (default: %(default)s)",
    )
    add_seed(fit)
    fit.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras' fit verbosity (default: %(default)s)",
    )
    out = parser.add_argument_group("sample grids")
    out.add_argument(
        "--sample-every",
        type=positive_int,
        default=20,
        help="write samples/epoch_NNNN.png every N epochs and at the end (default: %(default)s)",
    )
    out.add_argument("--num-samples", type=positive_int, default=64, help="(default: %(default)s)")
    out.add_argument(
        "--sampler",
        default=registry.GRID_SAMPLER,
        choices=registry.sampler_names(),
        metavar="SAMPLER",
        help=f"the grids' sampler: {sampler_help()} (default: %(default)s: few steps, and "
        "deterministic, so that frames differ only by training)",
    )
    out.add_argument(
        "--sample-steps",
        type=positive_int,
        default=None,
        help="the grids' sampling steps (default: the sampler's)",
    )
    out.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance scale of the grids of a --conditional model, whose "
        "image i shows class i modulo the number of classes (default: 1, no guidance)",
    )
