"""Registration of the datasets in their standard layout under ``$ROTATED_DET_DATASETS``.

The root defaults to ``./datasets`` (relative to the working directory). Layouts are described in
``datasets/README.md``. Registering only records paths; nothing is read until
``DatasetCatalog.get(name)``. The synthetic datasets are generated (and split) on first use.

Metadata (``image_root``, ...) records the root at import time; the loaders read
``$ROTATED_DET_DATASETS`` again when a dataset is loaded.

Registered names:

- DOTA ``v1`` (15 classes), ``v15`` (16), ``v2`` (18): ``dota_{v}_train``, ``dota_{v}_val``,
  ``dota_{v}_trainval``, ``dota_{v}_test`` (no labels) under ``DOTA-v1.0``, ``DOTA-v1.5``,
  ``DOTA-v2.0``; their split variants ``dota_{v}_{train,val,trainval,test}_ss`` (patches of
  ``tools/split_dota.py --preset ss`` in ``split_ss/<split>``) and ``..._ms`` (``split_ms/``),
  whose metadata ``full_dataset_name`` names the dataset of the full images.
- HRSC2016: ``hrsc2016_trainval``, ``hrsc2016_test`` (one "ship" class) and
  ``hrsc2016_trainval_fine``, ``hrsc2016_test_fine`` (fine-grained classes).
- Synthetic: ``synthetic_train``, ``synthetic_val`` (full scenes) and ``synthetic_train_512``,
  ``synthetic_val_512`` (512 px patches with a 128 px overlap).
- DIOR-R (20 classes): ``dior_r_{train,val,trainval,test}`` under ``DIOR``.
- FAIR1M (37 classes): ``fair1m_v1_{train,test}`` under ``FAIR1M-1.0``,
  ``fair1m_v2_{train,val,trainval,test}`` under ``FAIR1M-2.0`` (full images, XML labels), and
  their 1024 px patches ``..._ss`` (``datasets/prepare_fair1m.py``, ``split_ss/<split>``).
- SAR ships: ``ssdd_{train,test,test_inshore,test_offshore}`` (RBox-SSDD, ``SSDD``),
  ``hrsid_{train,test}`` (``HRSID``), ``rsdd_sar_{train,test}`` (``RSDD-SAR``), one class "ship";
  ``srsdd_{train,test}`` (``SRSDD``, 6 classes, DOTA labels).

Registered on request (:func:`register_dota_p0706`, called by ``configs/quickstart/
dota_p0706_data.py``): ``dota_p0706`` (one real DOTA v1.0 scene, P0706, single class "ship") and
``dota_p0706_512`` (its 512 px patches), prepared on first use from the DOTA samples.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.coco_polygons import load_coco_polygon_json
from rotated_det.data.datasets.dota import load_dota_instances
from rotated_det.data.datasets.fair1m import FAIR1M_CLASSES, load_fair1m_instances
from rotated_det.data.datasets.hrsc import HRSC_FINE_CLASSES, load_hrsc_instances
from rotated_det.data.datasets.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_COLORS
from rotated_det.data.datasets.voc_rotated import DIOR_R_CLASSES, load_voc_rotated_instances
from rotated_det.structures.dota_format import DOTA_V1_CLASSES, DOTA_V2_CLASSES, DOTA_V15_CLASSES

__all__ = [
    "get_datasets_root",
    "register_all",
    "prepare_synthetic",
    "SYNTHETIC_SPLIT",
    "P0706_CLASSES",
    "P0706_SPLIT",
    "find_dota_samples",
    "prepare_dota_p0706",
    "register_dota_p0706",
    "SRSDD_CLASSES",
]

logger = logging.getLogger(__name__)

_DOTA_VERSIONS = {
    "v1": ("DOTA-v1.0", DOTA_V1_CLASSES),
    "v15": ("DOTA-v1.5", DOTA_V15_CLASSES),
    "v2": ("DOTA-v2.0", DOTA_V2_CLASSES),
}

# How the synthetic scenes are cut into training patches.
SYNTHETIC_SPLIT = dict(sizes=(512,), gaps=(128,), rates=(1.0,), iof_thr=0.7)
SYNTHETIC_ARGS = dict(num_train=48, num_val=12, seed=0, image_size=640)
# The P0706 datasets: one class ("harbor" objects are skipped and counted) and the split.
P0706_CLASSES = ("ship",)
P0706_SPLIT = dict(sizes=(512,), gaps=(128,), rates=(1.0,), iof_thr=0.7)


def get_datasets_root() -> str:
    """``$ROTATED_DET_DATASETS`` or ``./datasets``."""
    return os.path.expanduser(os.environ.get("ROTATED_DET_DATASETS", "datasets"))


def _dota_colors(n: int) -> list[tuple[int, int, int]]:
    import colorsys

    rgb = [colorsys.hsv_to_rgb(i / n, 0.85, 0.95) for i in range(n)]
    return [(int(255 * r), int(255 * g), int(255 * b)) for r, g, b in rgb]


def _register(name, func, **metadata):
    DatasetCatalog.register(name, func)
    MetadataCatalog.get(name).set(**metadata)


def _register_dota(root: str) -> None:
    for ver, (folder, classes) in _DOTA_VERSIONS.items():
        base = os.path.join(root, folder)
        md = dict(
            thing_classes=list(classes),
            thing_colors=_dota_colors(len(classes)),
            evaluator_type="dota",
            dota_version=ver,
        )

        def loader(splits, labelled, name, folder=folder, classes=classes):
            def f():
                base = os.path.join(get_datasets_root(), folder)
                out = []
                for s in splits:
                    out += load_dota_instances(
                        os.path.join(base, s, "images"),
                        os.path.join(base, s, "labelTxt") if labelled else None,
                        classes,
                        dataset_name=name,
                    )
                return out

            return f

        for split, parts, labelled in (
            ("train", ["train"], True),
            ("val", ["val"], True),
            ("trainval", ["train", "val"], True),
            ("test", ["test"], False),
        ):
            name = f"dota_{ver}_{split}"
            _register(
                name,
                loader(parts, labelled, name),
                image_root=os.path.join(base, parts[0], "images"),
                **md,
            )
        for mode in ("ss", "ms"):
            for split in ("train", "val", "trainval", "test"):
                name = f"dota_{ver}_{split}_{mode}"
                sub = os.path.join(f"split_{mode}", split)
                _register(
                    name,
                    loader([sub], split != "test", name),
                    image_root=os.path.join(base, sub, "images"),
                    full_dataset_name=f"dota_{ver}_{split}",
                    split_preset=mode,
                    **md,
                )


def _register_hrsc(root: str) -> None:
    base = os.path.join(root, "HRSC2016")
    for split in ("trainval", "test"):
        for fine in (False, True):
            name = f"hrsc2016_{split}" + ("_fine" if fine else "")
            classes = list(HRSC_FINE_CLASSES) if fine else ["ship"]

            def f(split=split, fine=fine, name=name):
                base = os.path.join(get_datasets_root(), "HRSC2016")
                return load_hrsc_instances(
                    os.path.join(base, "FullDataSet", "AllImages"),
                    os.path.join(base, "FullDataSet", "Annotations"),
                    os.path.join(base, "ImageSets", f"{split}.txt"),
                    fine_grained=fine,
                    dataset_name=name,
                )

            _register(
                name,
                f,
                thing_classes=classes,
                evaluator_type="hrsc",
                image_root=os.path.join(base, "FullDataSet", "AllImages"),
            )


def prepare_synthetic(
    root: str | None = None, split_patches: bool = True, generator_args: dict | None = None
) -> str:
    """Generate the default synthetic dataset (and its 512 px patches) under
    ``root`` (default ``$ROTATED_DET_DATASETS/synthetic``) unless already there.

    Safe to call from several processes at once (file lock). ``generator_args`` override
    :data:`SYNTHETIC_ARGS` (the arguments of ``generate_synthetic_dataset``). Returns ``root``.
    """
    from rotated_det.data.datasets.synthetic import (
        generate_synthetic_dataset,
        synthetic_dataset_exists,
    )

    root = root or os.path.join(get_datasets_root(), "synthetic")
    done = os.path.join(root, "split_512", "DONE")
    if synthetic_dataset_exists(root) and (not split_patches or os.path.isfile(done)):
        return root
    with _locked(root):
        if not synthetic_dataset_exists(root):
            logger.info(f"Generating the synthetic dataset in {root} (first use)")
            generate_synthetic_dataset(root, **{**SYNTHETIC_ARGS, **(generator_args or {})})
        if split_patches and not os.path.isfile(done):
            _split_once(
                [
                    (os.path.join(root, s), os.path.join(root, "split_512", s))
                    for s in ("train", "val")
                ],
                SYNTHETIC_SPLIT,
                done,
            )
    return root


@contextmanager
def _locked(root: str) -> Iterator[None]:
    """Hold an exclusive file lock on ``root/.lock`` (created with ``root``): preparing a dataset
    is safe from several processes at once."""
    import fcntl

    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _split_once(parts: Sequence[tuple[str, str]], split_args: dict, done: str) -> None:
    """Split each ``(source, destination)`` folder pair (``images/`` and ``labelTxt/`` under the
    source) with :func:`rotated_det.data.dota_split.split_dota`, then write the ``done`` marker."""
    from rotated_det.data.dota_split import split_dota

    for src, dst in parts:
        split_dota(
            [os.path.join(src, "images")],
            dst,
            ann_dirs=[os.path.join(src, "labelTxt")],
            progress=False,
            **split_args,
        )
    with open(done, "w") as f:
        f.write("ok\n")


def _register_synthetic(root: str) -> None:
    md = dict(
        thing_classes=list(SYNTHETIC_CLASSES),
        thing_colors=list(SYNTHETIC_COLORS),
        evaluator_type="dota",
    )
    for split in ("train", "val"):
        for patched in (False, True):
            sub = os.path.join("split_512", split) if patched else split
            name = f"synthetic_{split}" + ("_512" if patched else "")

            def f(sub=sub, name=name, patched=patched):
                # The root is read when the dataset is loaded, so $ROTATED_DET_DATASETS may be
                # set after import.
                base = os.path.join(get_datasets_root(), "synthetic")
                prepare_synthetic(base, split_patches=patched)
                return load_dota_instances(
                    os.path.join(base, sub, "images"),
                    os.path.join(base, sub, "labelTxt"),
                    SYNTHETIC_CLASSES,
                    dataset_name=name,
                )

            base = os.path.join(root, "synthetic")
            extra = (
                {
                    "full_image_root": os.path.join(base, split, "images"),
                    "full_dataset_name": f"synthetic_{split}",
                }
                if patched
                else {}
            )
            _register(name, f, image_root=os.path.join(base, sub, "images"), **md, **extra)


def find_dota_samples() -> str:
    """The folder of DOTA samples holding ``images/P0706.png`` and ``labelTxt/P0706.txt``:
    ``$ROTATED_DET_SHARED_DATA`` (the folder holding ``dota_samples/``, or ``dota_samples``
    itself), else the repository's ``tests/data/dota_samples``.

    Raises:
        FileNotFoundError: naming the folders looked in.
    """
    env = os.environ.get("ROTATED_DET_SHARED_DATA")
    if env:
        candidates = [os.path.join(env, "dota_samples"), env]
    else:
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        candidates = [os.path.join(repo, "tests", "data", "dota_samples")]
    for c in candidates:
        if os.path.isfile(os.path.join(c, "images", "P0706.png")) and os.path.isfile(
            os.path.join(c, "labelTxt", "P0706.txt")
        ):
            return os.path.normpath(os.path.abspath(c))
    raise FileNotFoundError(
        "The P0706 datasets need the DOTA samples (images/P0706.png and "
        f"labelTxt/P0706.txt); looked in {[os.path.normpath(c) for c in candidates]}. "
        "Set ROTATED_DET_SHARED_DATA to the folder that holds dota_samples/."
    )


def prepare_dota_p0706(root: str | None = None) -> str:
    """Copy P0706 from :func:`find_dota_samples` to ``root/full`` and split it into
    ``root/split_512`` (:data:`P0706_SPLIT`) unless already done; default root
    ``$ROTATED_DET_DATASETS/dota_p0706``. Safe from several processes at once (file lock).
    Returns ``root``."""
    root = root or os.path.join(get_datasets_root(), "dota_p0706")
    done = os.path.join(root, "split_512", "DONE")
    if os.path.isfile(done):
        return root
    with _locked(root):
        if not os.path.isfile(done):
            src = find_dota_samples()
            full = os.path.join(root, "full")
            for sub, name in (("images", "P0706.png"), ("labelTxt", "P0706.txt")):
                os.makedirs(os.path.join(full, sub), exist_ok=True)
                shutil.copyfile(os.path.join(src, sub, name), os.path.join(full, sub, name))
            _split_once([(full, os.path.join(root, "split_512"))], P0706_SPLIT, done)
    return root


def register_dota_p0706() -> None:
    """Register ``dota_p0706`` (the full scene: the ground truth of the merged evaluation) and
    ``dota_p0706_512`` (its patches), unless registered already. Nothing is read until a dataset
    is loaded; loading prepares the data (:func:`prepare_dota_p0706`) under the
    ``$ROTATED_DET_DATASETS`` of that moment. The 5 "harbor" objects of the scene are skipped and
    counted in the log."""
    for name, sub in (("dota_p0706", "full"), ("dota_p0706_512", "split_512")):
        if name in DatasetCatalog.list():
            continue

        def load(sub=sub, name=name):
            root = prepare_dota_p0706()
            return load_dota_instances(
                os.path.join(root, sub, "images"),
                os.path.join(root, sub, "labelTxt"),
                P0706_CLASSES,
                unknown_classes="skip",
                dataset_name=name,
            )

        image_root = os.path.join(get_datasets_root(), "dota_p0706", sub, "images")
        _register(
            name,
            load,
            thing_classes=list(P0706_CLASSES),
            thing_colors=[(250, 60, 40)],
            evaluator_type="dota",
            image_root=image_root,
        )
    MetadataCatalog.get("dota_p0706_512").set(full_dataset_name="dota_p0706")


# SRSDD-v1.0's classes as its DOTA-style label files spell them (MMRotate's order).
SRSDD_CLASSES = ("Container", "Dredger", "LawEnforce", "Cell-Container", "ore-oil", "Fishing")


def _register_dior_r(root: str) -> None:
    """DIOR-R: ``DIOR/JPEGImages-{trainval,test}``, ``DIOR/Annotations/Oriented Bounding Boxes``,
    ``DIOR/ImageSets/Main/{train,val,test}.txt`` (trainval: ``trainval.txt``, else train + val)."""
    for split in ("train", "val", "trainval", "test"):
        name = f"dior_r_{split}"
        images = "JPEGImages-test" if split == "test" else "JPEGImages-trainval"

        def f(split=split, name=name, images=images):
            base = os.path.join(get_datasets_root(), "DIOR")
            sets = os.path.join(base, "ImageSets", "Main")
            parts = [split]
            if split == "trainval" and not os.path.isfile(os.path.join(sets, "trainval.txt")):
                parts = ["train", "val"]
            return [
                d
                for p in parts
                for d in load_voc_rotated_instances(
                    os.path.join(base, images),
                    os.path.join(base, "Annotations", "Oriented Bounding Boxes"),
                    DIOR_R_CLASSES,
                    "dior_r",
                    os.path.join(sets, f"{p}.txt"),
                    dataset_name=name,
                )
            ]

        _register(
            name,
            f,
            thing_classes=list(DIOR_R_CLASSES),
            evaluator_type="dota",
            image_root=os.path.join(root, "DIOR", images),
        )


def _register_fair1m(root: str) -> None:
    """FAIR1M: ``FAIR1M-<ver>/<split>/{images,labelXml}`` (full images) and the patches of
    ``datasets/prepare_fair1m.py`` in ``FAIR1M-<ver>/split_ss/<split>/{images,labelTxt}``."""
    md = dict(
        thing_classes=list(FAIR1M_CLASSES),
        thing_colors=_dota_colors(len(FAIR1M_CLASSES)),
        evaluator_type="dota",
    )
    for ver, folder, labelled in (
        ("v1", "FAIR1M-1.0", ["train"]),
        ("v2", "FAIR1M-2.0", ["train", "val"]),
    ):
        splits = {s: [s] for s in labelled}
        if len(labelled) > 1:
            splits["trainval"] = labelled
        splits["test"] = ["test"]
        for split, parts in splits.items():
            name = f"fair1m_{ver}_{split}"
            test = split == "test"

            def full(parts=parts, name=name, folder=folder, test=test):
                base = os.path.join(get_datasets_root(), folder)
                return [
                    d
                    for p in parts
                    for d in load_fair1m_instances(
                        os.path.join(base, p, "images"),
                        None if test else os.path.join(base, p, "labelXml"),
                        dataset_name=name,
                    )
                ]

            def patches(split=split, name=name, folder=folder, test=test):
                sub = os.path.join(get_datasets_root(), folder, "split_ss", split)
                return load_dota_instances(
                    os.path.join(sub, "images"),
                    None if test else os.path.join(sub, "labelTxt"),
                    FAIR1M_CLASSES,
                    dataset_name=name + "_ss",
                )

            base = os.path.join(root, folder)
            _register(name, full, image_root=os.path.join(base, parts[0], "images"), **md)
            _register(
                name + "_ss",
                patches,
                image_root=os.path.join(base, "split_ss", split, "images"),
                full_dataset_name=name,
                split_preset="ss",
                **md,
            )


def _register_sar_ships(root: str) -> None:
    """RBox-SSDD (``SSDD/{JPEGImages,Annotations}_<split>``), HRSID (``HRSID/JPEGImages``,
    ``HRSID/annotations/<split>2017.json``), RSDD-SAR (``RSDD-SAR/{JPEGImages,Annotations}``,
    ``RSDD-SAR/ImageSets/<split>.txt``) and SRSDD (``SRSDD/<split>/{images,labelTxt}``)."""
    ship = dict(thing_classes=["ship"], evaluator_type="hrsc")

    def ssdd(split, name):
        base = os.path.join(get_datasets_root(), "SSDD")
        images = os.path.join(base, f"JPEGImages_{split}")
        if not os.path.isdir(images):  # copies that keep every image in one folder
            images = os.path.join(base, "JPEGImages")
        return load_voc_rotated_instances(
            images,
            os.path.join(base, f"Annotations_{split}"),
            ("ship",),
            "ssdd",
            dataset_name=name,
        )

    def rsdd(split, name):
        base = os.path.join(get_datasets_root(), "RSDD-SAR")
        return load_voc_rotated_instances(
            os.path.join(base, "JPEGImages"),
            os.path.join(base, "Annotations"),
            ("ship",),
            "rolabelimg",
            os.path.join(base, "ImageSets", f"{split}.txt"),
            dataset_name=name,
        )

    def hrsid(split, name):
        base = os.path.join(get_datasets_root(), "HRSID")
        return load_coco_polygon_json(
            os.path.join(base, "annotations", f"{split}2017.json"),
            os.path.join(base, "JPEGImages"),
            name,
        )

    def srsdd(split, name):
        base = os.path.join(get_datasets_root(), "SRSDD", split)
        return load_dota_instances(
            os.path.join(base, "images"),
            os.path.join(base, "labelTxt"),
            SRSDD_CLASSES,
            dataset_name=name,
        )

    for prefix, folder, load, splits, md in (
        ("ssdd", "SSDD", ssdd, ("train", "test", "test_inshore", "test_offshore"), ship),
        ("rsdd_sar", "RSDD-SAR", rsdd, ("train", "test"), ship),
        ("hrsid", "HRSID", hrsid, ("train", "test"), dict(ship, evaluator_type="rotated_coco")),
        (
            "srsdd",
            "SRSDD",
            srsdd,
            ("train", "test"),
            dict(thing_classes=list(SRSDD_CLASSES), evaluator_type="dota"),
        ),
    ):
        for split in splits:
            name = f"{prefix}_{split}"
            _register(
                name,
                lambda load=load, split=split, name=name: load(split, name),
                image_root=os.path.join(root, folder),
                **md,
            )


def register_all(root: str | None = None) -> None:
    """Register every builtin dataset under ``root`` (default :func:`get_datasets_root`)."""
    root = root or get_datasets_root()
    _register_dota(root)
    _register_hrsc(root)
    _register_synthetic(root)
    _register_dior_r(root)
    _register_fair1m(root)
    _register_sar_ships(root)


if __name__.endswith(".builtin"):
    # Runs once on import of rotated_det.data (like Detectron2's builtin registrations).
    register_all()
