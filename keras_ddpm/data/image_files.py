"""Which files are images: one list of extensions, with no TensorFlow import.

`load_image_folder` and the command line's editing verbs (`--image`) both ask
`is_image_name`, so that a folder holds the same images for both.
"""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def is_image_name(name):
    """Whether a file name is an image's: a known extension, and not a hidden file."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
