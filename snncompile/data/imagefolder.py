"""``imagefolder:<folder>``: image files the user has, one subfolder per class (torchvision's layout).

    <folder>/train/<class>/<image>      required
    <folder>/test/<class>/<image>       required
    <folder>/val/<class>/<image>        optional: the validation split

Classes are the subfolder names of ``train`` in sorted order (label 0, 1, ...); ``test`` and ``val``
may hold a subset of them.  Files with the extensions in :data:`EXTENSIONS` are read with Pillow
(other files are ignored), in sorted order within each class.  Every image must have the size and
the channels of the first one: grey images (mode ``L``, or ``1``/``P`` converted to ``L``) give
(1, H, W), every other mode (``RGB``, ``RGBA`` without its alpha, palettes) (3, H, W); values are
bytes / 255.
Every problem raises DatasetError naming the file or folder and the rule.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import DatasetError

GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # read as one channel; every other mode as RGB
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def image_files(folder: str) -> dict:
    """{split: [(path, class name)]} of an image folder (module docstring), checked for layout."""
    if not os.path.isdir(folder):
        raise DatasetError(f"dataset 'imagefolder:{folder}': folder not found: {folder}")
    out = {}
    for split in ("train", "test", "val"):
        sub = os.path.join(folder, split)
        if not os.path.isdir(sub):
            if split == "val":
                continue
            raise DatasetError(f"{folder}: no '{split}' subfolder (an image folder holds train/<class>/<image> and "
                               "test/<class>/<image>)")
        classes = sorted(d for d in os.listdir(sub) if os.path.isdir(os.path.join(sub, d)))
        if not classes:
            raise DatasetError(f"{sub}: no class subfolders (expected {split}/<class>/<image>)")
        files = []
        for c in classes:
            names = sorted(f for f in os.listdir(os.path.join(sub, c)) if f.lower().endswith(EXTENSIONS))
            files += [(os.path.join(sub, c, f), c) for f in names]
        if not files:
            raise DatasetError(f"{sub}: no image files ({', '.join(EXTENSIONS)}) in its class subfolders")
        out[split] = files
    return out


def _read(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode != "L":
                im = im.convert("L" if im.mode in GREY_MODES else "RGB")
            a = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def load_imagefolder_arrays(folder: str) -> dict:
    """Arrays of the ``imagefolder:<folder>`` dataset (module docstring)."""
    splits = image_files(folder)
    classes = sorted({c for _, c in splits["train"]})
    index = {c: i for i, c in enumerate(classes)}
    out, shape, first = {}, None, None
    for split, files in splits.items():
        unknown = sorted({c for _, c in files} - set(classes))
        if unknown:
            raise DatasetError(f"{os.path.join(folder, split)}: class folder(s) {', '.join(unknown)} do not exist "
                               "under train/ (every class must have training images)")
        images = []
        for path, _ in files:
            a = _read(path)
            if shape is None:
                shape, first = a.shape, path
            elif a.shape != shape:
                raise DatasetError(f"{path}: image of shape {a.shape} (channels, height, width), but {first} has "
                                   f"{shape}: every image must have the same size and channels")
            images.append(a)
        out[f"x_{split}"] = np.stack(images).astype(np.float32) / np.float32(255.0)
        out[f"y_{split}"] = np.array([index[c] for _, c in files], dtype=np.int64)
    sizes = " / ".join(f"{len(out[f'y_{s}']):,} {s}" for s in ("train", "val", "test") if f"y_{s}" in out)
    return dict(name=f"imagefolder:{folder}", input_shape=tuple(shape), n_classes=len(classes),
                description=f"image folder {folder}: {sizes}; images of shape {tuple(shape)}; {len(classes)} "
                            f"classes ({', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''}).", **out)
