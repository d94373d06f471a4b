"""Readers for the paper's real datasets that store one image per file under a data root.

``READERS[name](root, split)`` returns the official ``train`` or ``test`` split of a dataset as a
:class:`~tallmerge.tasks.samples.FileSamples`; ``LAYOUTS[name]`` is the expected layout under
``root`` (the layout torchvision 0.29 reads or the public archives unpack to), which every error
names. Readers parse only metadata (split lists, ``.mat``/CSV/JSON files, folder listings) and
check that every listed image exists; pixels are read in ``image(i)``. Samples come in the order
of the split file, or sorted by class and file name where the split is a folder tree.

==============  ==================================  ==================================  ==========================
dataset         train                               test                                class names
==============  ==================================  ==================================  ==========================
Cars            ``devkit/cars_train_annos.mat``     ``cars_test_annos_withlabels.mat``  ``devkit/cars_meta.mat``
DTD             ``labels/train1.txt`` + ``val1``    ``labels/test1.txt``                sorted class folders
EuroSAT         the rest (~90% of each class)       10% of each class, see below        CLIP's, per folder
GTSRB           ``GTSRB/Training/<class id>/``      ``GT-final_test.csv``               CLIP's, by class id
RESISC45        ``resisc45-train.txt``              ``resisc45-test.txt``               sorted class folders
SUN397          ``Training_01.txt``                 ``Testing_01.txt``                  ``ClassName.txt``
OxfordIIITPet   ``annotations/trainval.txt``        ``annotations/test.txt``            image names, by class id
Flowers102      ``setid.mat`` trnid + valid         ``setid.mat`` tstid                 CLIP's, by label
Food101         ``meta/train.json``                 ``meta/test.json``                  ``meta/classes.txt``
RenderedSST2    ``train/<class>/``                  ``test/<class>/``                   negative, positive
==============  ==================================  ==================================  ==========================

Class names are lower-case words where they are derived (``_`` and ``/`` become spaces: SUN397
``/b/bakery/shop`` is "bakery shop", Pets ``american_bulldog`` is "american bulldog"); Cars keeps
the names of ``cars_meta.mat`` as they are. Labels in the files are 1-based for Cars, Pets and
Flowers102 and 0-based for GTSRB; readers return 0-based labels. EuroSAT has no official split:
its test split is, in each class, the first ``ceil(10% of n)`` entries of
``numpy.random.default_rng(0).permutation(n)`` over the class's ``n`` files sorted by name (a fresh
generator per class); train is the rest. Validation sets (DTD ``val1``, Flowers102 ``valid``) go
to train, as the pipeline holds its own validation split out of train.

For exact comparability with the paper, DTD, EuroSAT and SUN397 are read from the split folders
the task-vectors / TALL-mask code prepares instead, when they are present
(:data:`REFERENCE_SPLITS`: ``dtd/{train,val}``, ``EuroSAT_splits/{train,test}``,
``sun397/{train,val}``, each ``<class>/*.jpg``; that code's ``val`` folders are its test splits;
SUN397's class folders are ``<letter>_<class>``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.io

from tallmerge.errors import TallmergeError
from tallmerge.tasks.samples import FileSamples, Samples, check_split, require

LAYOUTS = {
    "Cars": "stanford_cars/{cars_train,cars_test}/*.jpg, stanford_cars/devkit/{cars_meta.mat,cars_train_annos.mat} "
    "and stanford_cars/cars_test_annos_withlabels.mat (torchvision StanfordCars)",
    "DTD": "dtd/dtd/images/<class>/*.jpg and dtd/dtd/labels/{train1,val1,test1}.txt of class/file.jpg lines "
    "(torchvision DTD), or the task-vectors code's dtd/{train,val}/<class>/*.jpg",
    "EuroSAT": "eurosat/2750/<class>/*.jpg with exactly the 10 folders AnnualCrop ... SeaLake (torchvision EuroSAT), "
    "or the task-vectors code's EuroSAT_splits/{train,test}/<class>/*.jpg",
    "GTSRB": "gtsrb/GTSRB/Training/<00000..00042>/*.ppm, gtsrb/GTSRB/Final_Test/Images/*.ppm and "
    "gtsrb/GT-final_test.csv with Filename;...;ClassId rows (torchvision GTSRB)",
    "RESISC45": "resisc45/NWPU-RESISC45/<class>/<class>_NNN.jpg and resisc45/resisc45-{train,test}.txt of file names "
    "(torchgeo RESISC45)",
    "SUN397": "SUN397/ClassName.txt, SUN397/<letter>/<class>/sun_*.jpg and SUN397/{Training,Testing}_01.txt "
    "of /<letter>/<class>/sun_*.jpg lines (SUN397.tar.gz plus Partitions.zip), or the task-vectors code's "
    "sun397/{train,val}/<letter>_<class>/*.jpg",
    "OxfordIIITPet": "oxford-iiit-pet/images/<Breed_N>.jpg and oxford-iiit-pet/annotations/{trainval,test}.txt of "
    "'<Breed_N> <class id> <species> <breed id>' lines (torchvision OxfordIIITPet)",
    "Flowers102": "flowers-102/jpg/image_NNNNN.jpg, flowers-102/imagelabels.mat (labels) and flowers-102/setid.mat "
    "(trnid, valid, tstid) (torchvision Flowers102)",
    "Food101": "food-101/images/<class>/<id>.jpg and food-101/meta/{classes.txt,train.json,test.json} "
    "(torchvision Food101)",
    "RenderedSST2": "rendered-sst2/{train,test}/{negative,positive}/*.png (torchvision RenderedSST2)",
}
"""Each dataset's expected layout under the data root, as the errors name it."""

EUROSAT_CLASSNAMES = {
    "AnnualCrop": "annual crop land",
    "Forest": "forest",
    "HerbaceousVegetation": "brushland or shrubland",
    "Highway": "highway or road",
    "Industrial": "industrial buildings or commercial buildings",
    "Pasture": "pasture land",
    "PermanentCrop": "permanent crop land",
    "Residential": "residential buildings or homes or apartments",
    "River": "river",
    "SeaLake": "lake or sea",
}
"""EuroSAT class folder -> CLIP's class name, in sorted folder (= label) order."""

REFERENCE_SPLITS = {  # dataset -> (folder, train folder, test folder)
    "DTD": ("dtd", "train", "val"),
    "EuroSAT": ("EuroSAT_splits", "train", "test"),
    "SUN397": ("sun397", "train", "val"),
}
"""The split folders the task-vectors / TALL-mask code reads (``<class>/`` image folders made by
its preparation scripts; its ``val`` folders of DTD and SUN397 are its test splits). Where they
exist, the reader serves them instead of the dataset's own layout, so that the splits are the
reference code's."""

EUROSAT_TEST_FRACTION = 0.1
EUROSAT_SEED = 0

GTSRB_CLASSNAMES = (
    "red and white circle 20 kph speed limit",
    "red and white circle 30 kph speed limit",
    "red and white circle 50 kph speed limit",
    "red and white circle 60 kph speed limit",
    "red and white circle 70 kph speed limit",
    "red and white circle 80 kph speed limit",
    "end / de-restriction of 80 kph speed limit",
    "red and white circle 100 kph speed limit",
    "red and white circle 120 kph speed limit",
    "red and white circle red car and black car no passing",
    "red and white circle red truck and black car no passing",
    "red and white triangle road intersection warning",
    "white and yellow diamond priority road",
    "red and white upside down triangle yield right-of-way",
    "stop",
    "empty red and white circle",
    "red and white circle no truck entry",
    "red circle with white horizonal stripe no entry",
    "red and white triangle with exclamation mark warning",
    "red and white triangle with black left curve approaching warning",
    "red and white triangle with black right curve approaching warning",
    "red and white triangle with black double curve approaching warning",
    "red and white triangle rough / bumpy road warning",
    "red and white triangle car skidding / slipping warning",
    "red and white triangle with merging / narrow lanes warning",
    "red and white triangle with person digging / construction / road work warning",
    "red and white triangle with traffic light approaching warning",
    "red and white triangle with person walking warning",
    "red and white triangle with child and person walking warning",
    "red and white triangle with bicyle warning",
    "red and white triangle with snowflake / ice warning",
    "red and white triangle with deer warning",
    "white circle with gray strike bar no speed limit",
    "blue circle with white right turn arrow mandatory",
    "blue circle with white left turn arrow mandatory",
    "blue circle with white forward arrow mandatory",
    "blue circle with white forward or right turn arrow mandatory",
    "blue circle with white forward or left turn arrow mandatory",
    "blue circle with white keep right arrow mandatory",
    "blue circle with white keep left arrow mandatory",
    "blue circle with white arrows indicating a traffic circle",
    "white circle with gray strike bar indicating no passing for cars has ended",
    "white circle with gray strike bar indicating no passing for trucks has ended",
)
"""CLIP's GTSRB class names (``data/prompts.md``), in class-id order 0..42."""

FLOWERS102_CLASSNAMES = (
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold",
    "tiger lily", "moon orchid", "bird of paradise", "monkshood", "globe thistle",
    "snapdragon", "colt's foot", "king protea", "spear thistle", "yellow iris",
    "globe flower", "purple coneflower", "peruvian lily", "balloon flower", "giant white arum lily",
    "fire lily", "pincushion flower", "fritillary", "red ginger", "grape hyacinth",
    "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke", "sweet william",
    "carnation", "garden phlox", "love in the mist", "mexican aster", "alpine sea holly",
    "ruby-lipped cattleya", "cape flower", "great masterwort", "siam tulip", "lenten rose",
    "barbeton daisy", "daffodil", "sword lily", "poinsettia", "bolero deep blue",
    "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion",
    "petunia", "wild pansy", "primula", "sunflower", "pelargonium",
    "bishop of llandaff", "gaura", "geranium", "orange dahlia", "pink and yellow dahlia",
    "cautleya spicata", "japanese anemone", "black-eyed susan", "silverbush", "californian poppy",
    "osteospermum", "spring crocus", "bearded iris", "windflower", "tree poppy",
    "gazania", "azalea", "water lily", "rose", "thorn apple",
    "morning glory", "passion flower", "lotus", "toad lily", "anthurium",
    "frangipani", "clematis", "hibiscus", "columbine", "desert-rose",
    "tree mallow", "magnolia", "cyclamen", "watercress", "canna lily",
    "hippeastrum", "bee balm", "air plant", "foxglove", "bougainvillea",
    "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower",
    "trumpet creeper", "blackberry lily",
)  # fmt: skip
"""CLIP's Flowers102 class names (``data/prompts.md``), in label order 1..102."""

SST2_CLASSNAMES = ("negative", "positive")


# --- shared helpers ----------------------------------------------------------------------------


def _fail(dataset: str, problem: str) -> TallmergeError:
    return TallmergeError(f"{dataset}: {problem}; expected {LAYOUTS[dataset]}")


def _need(path: Path, dataset: str) -> Path:
    return require(path, dataset, LAYOUTS[dataset])


def _lines(path: Path, dataset: str) -> list[str]:
    """The stripped, non-blank lines of a text file."""
    try:
        text = _need(path, dataset).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _fail(dataset, f"{path} is not a UTF-8 text file") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _listing(folder: Path, dataset: str, keep: Callable[[Path], bool]) -> list[Path]:
    """The non-hidden entries of ``folder`` that ``keep`` accepts, sorted by name."""
    entries = (p for p in _need(folder, dataset).iterdir() if not p.name.startswith("."))
    return sorted((p for p in entries if keep(p)), key=lambda p: p.name)


def _class_folders(folder: Path, dataset: str) -> list[Path]:
    found = _listing(folder, dataset, Path.is_dir)
    if not found:
        raise _fail(dataset, f"{folder} has no class folders")
    return found


def _class_files(folder: Path, suffix: str, dataset: str) -> list[Path]:
    found = _listing(folder, dataset, lambda p: p.suffix.lower() == suffix and p.is_file())
    if not found:
        raise _fail(dataset, f"class folder {folder} has no {suffix} images")
    return found


def _listed(paths: list[Path], source: Path, dataset: str) -> list[Path]:
    """``paths`` named by the split file ``source``; an error names the first one missing."""
    for path in paths:
        if not path.is_file():
            raise _fail(dataset, f"{path} (listed in {source}) not found")
    return paths


def _index(name: str, classes: dict[str, int], source: Path, dataset: str) -> int:
    try:
        return classes[name]
    except KeyError:
        raise _fail(dataset, f"{source} names unknown class {name!r}") from None


def _loadmat(path: Path, dataset: str, *keys: str) -> dict[str, np.ndarray]:
    """The named variables of a MATLAB file, squeezed, each at least 1-d."""
    try:
        mat = scipy.io.loadmat(_need(path, dataset), squeeze_me=True)
    except (OSError, ValueError, NotImplementedError, scipy.io.matlab.MatReadError) as e:
        raise _fail(dataset, f"{path} is not a readable .mat file ({e})") from None
    missing = [key for key in keys if key not in mat]
    if missing:
        raise _fail(dataset, f"{path} has no {', '.join(missing)}")
    return {key: np.atleast_1d(mat[key]) for key in keys}


def _samples(
    dataset: str,
    paths: Sequence[Path],
    labels: Sequence[int] | np.ndarray,
    classnames: Sequence[str],
    source: Path,
) -> Samples:
    """The split's samples; an error names ``source`` if it has no images or labels out of range."""
    labels = np.asarray(labels, dtype=np.int64)
    if not len(paths):
        raise _fail(dataset, f"{source} lists no images")
    if labels.min() < 0 or labels.max() >= len(classnames):
        raise _fail(dataset, f"{source} has labels outside the {len(classnames)} classes")
    return FileSamples(paths, labels, classnames)


def _folder_tree(
    dataset: str, folder: Path, class_dirs: Sequence[str], suffix: str
) -> tuple[list[Path], list[int]]:
    """Every ``suffix`` image of ``folder/<class_dirs[label]>/``, by label then file name."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_dirs):
        files = _class_files(folder / name, suffix, dataset)
        paths += files
        labels += [label] * len(files)
    return paths, labels


def _reference_split(root: Path, dataset: str, split: str, classname: Callable[[str], str]) -> Samples | None:
    """The reference code's split folders of ``dataset`` (:data:`REFERENCE_SPLITS`), if present:
    classes are train's sorted class folders, named by ``classname(folder)``."""
    folder, train, test = REFERENCE_SPLITS[dataset]
    if not (root / folder / train).is_dir():
        return None
    class_dirs = [p.name for p in _class_folders(root / folder / train, dataset)]
    source = root / folder / (train if split == "train" else test)
    found = [p.name for p in _class_folders(source, dataset)]
    if found != class_dirs:
        raise _fail(dataset, f"{source} has other class folders than {root / folder / train}")
    paths, labels = _folder_tree(dataset, source, class_dirs, ".jpg")
    return _samples(dataset, paths, labels, [classname(d) for d in class_dirs], source)


# --- readers -----------------------------------------------------------------------------------


def read_cars(root: Path, split: str) -> Samples:
    check_split("Cars", split)
    base = root / "stanford_cars"
    meta = _loadmat(base / "devkit" / "cars_meta.mat", "Cars", "class_names")
    classnames = [str(name).strip() for name in meta["class_names"]]
    source = (
        base / "devkit" / "cars_train_annos.mat"
        if split == "train"
        else base / "cars_test_annos_withlabels.mat"
    )
    annotations = _loadmat(source, "Cars", "annotations")["annotations"]
    images = _need(base / f"cars_{split}", "Cars")
    try:
        paths = [images / str(a["fname"]) for a in annotations]
        labels = [int(a["class"]) - 1 for a in annotations]
    except (ValueError, IndexError, TypeError):
        raise _fail("Cars", f"{source} annotations lack the fname and class fields") from None
    return _samples("Cars", _listed(paths, source, "Cars"), labels, classnames, source)


def read_dtd(root: Path, split: str) -> Samples:
    check_split("DTD", split)
    if (reference := _reference_split(root, "DTD", split, lambda d: d.replace("_", " "))) is not None:
        return reference
    base = root / "dtd" / "dtd"
    images = base / "images"
    classnames = [p.name for p in _class_folders(images, "DTD")]
    classes = {name: i for i, name in enumerate(classnames)}
    paths: list[Path] = []
    labels: list[int] = []
    for name in ("train1", "val1") if split == "train" else ("test1",):
        source = base / "labels" / f"{name}.txt"
        entries = [line.split("/") for line in _lines(source, "DTD")]
        if any(len(entry) != 2 for entry in entries):
            raise _fail("DTD", f"{source} has a line that is not class/file.jpg")
        labels += [_index(cls, classes, source, "DTD") for cls, _ in entries]
        paths += _listed([images / cls / file for cls, file in entries], source, "DTD")
    return _samples("DTD", paths, labels, classnames, base / "labels")


def read_eurosat(root: Path, split: str) -> Samples:
    check_split("EuroSAT", split)
    if (reference := _reference_split(root, "EuroSAT", split, _eurosat_classname)) is not None:
        return reference
    folder = root / "eurosat" / "2750"
    found = [p.name for p in _class_folders(folder, "EuroSAT")]
    if found != list(EUROSAT_CLASSNAMES):
        raise _fail("EuroSAT", f"{folder} has the class folders {', '.join(found)}")
    paths, label_list = _folder_tree("EuroSAT", folder, found, ".jpg")
    labels = np.asarray(label_list)
    # Per class: the first ceil(10%) of a fresh default_rng(0) permutation of its sorted files.
    in_test = np.zeros(len(paths), dtype=bool)
    for label in range(len(found)):
        members = np.flatnonzero(labels == label)
        n_test = math.ceil(len(members) * EUROSAT_TEST_FRACTION)
        in_test[members[np.random.default_rng(EUROSAT_SEED).permutation(len(members))[:n_test]]] = True
    keep = np.flatnonzero(in_test == (split == "test"))
    return _samples(
        "EuroSAT", [paths[i] for i in keep], labels[keep], list(EUROSAT_CLASSNAMES.values()), folder
    )


def _eurosat_classname(folder: str) -> str:
    if folder not in EUROSAT_CLASSNAMES:
        raise _fail("EuroSAT", f"unknown class folder {folder!r}")
    return EUROSAT_CLASSNAMES[folder]


def read_gtsrb(root: Path, split: str) -> Samples:
    check_split("GTSRB", split)
    base = root / "gtsrb"
    if split == "train":
        folder = base / "GTSRB" / "Training"
        paths, labels = [], []
        class_ids = {f"{i:05d}": i for i in range(len(GTSRB_CLASSNAMES))}
        for class_dir in _class_folders(folder, "GTSRB"):
            if class_dir.name not in class_ids:
                raise _fail("GTSRB", f"{class_dir} is not a class folder 00000..00042")
            files = _class_files(class_dir, ".ppm", "GTSRB")
            paths += files
            labels += [class_ids[class_dir.name]] * len(files)
        return _samples("GTSRB", paths, labels, GTSRB_CLASSNAMES, folder)
    source = base / "GT-final_test.csv"
    images = _need(base / "GTSRB" / "Final_Test" / "Images", "GTSRB")
    with _need(source, "GTSRB").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";", skipinitialspace=True))
    try:
        paths = [images / row["Filename"] for row in rows]
        labels = [int(row["ClassId"]) for row in rows]
    except (KeyError, TypeError, ValueError):
        raise _fail("GTSRB", f"{source} lacks Filename and ClassId columns") from None
    return _samples("GTSRB", _listed(paths, source, "GTSRB"), labels, GTSRB_CLASSNAMES, source)


def read_resisc45(root: Path, split: str) -> Samples:
    check_split("RESISC45", split)
    base = root / "resisc45"
    images = base / "NWPU-RESISC45"
    folders = [p.name for p in _class_folders(images, "RESISC45")]
    classes = {name: i for i, name in enumerate(folders)}
    source = base / f"resisc45-{split}.txt"
    files = _lines(source, "RESISC45")
    folder_of = [file.rpartition("_")[0] for file in files]
    labels = [_index(cls, classes, source, "RESISC45") for cls in folder_of]
    paths = [images / cls / file for cls, file in zip(folder_of, files)]
    classnames = [name.replace("_", " ") for name in folders]
    return _samples("RESISC45", _listed(paths, source, "RESISC45"), labels, classnames, source)


def read_sun397(root: Path, split: str) -> Samples:
    check_split("SUN397", split)
    reference = _reference_split(root, "SUN397", split, lambda d: d[2:].replace("_", " "))  # "b_bakery_shop"
    if reference is not None:
        return reference
    base = root / "SUN397"
    class_file = base / "ClassName.txt"
    keys = _lines(class_file, "SUN397")  # "/b/bakery/shop"
    for key in keys:
        if not (key.startswith("/") and key.count("/") >= 2):
            raise _fail("SUN397", f"{class_file} has a line {key!r} that is not /<letter>/<class>")
    classnames = [key.split("/", 2)[2].replace("/", " ").replace("_", " ") for key in keys]
    classes = {key: i for i, key in enumerate(keys)}
    source = base / ("Training_01.txt" if split == "train" else "Testing_01.txt")
    lines = _lines(source, "SUN397")  # "/b/bakery/shop/sun_aaa.jpg"
    labels = [_index(line.rpartition("/")[0], classes, source, "SUN397") for line in lines]
    paths = [base / line.lstrip("/") for line in lines]
    return _samples("SUN397", _listed(paths, source, "SUN397"), labels, classnames, source)


def _pet_rows(source: Path) -> list[tuple[str, int]]:
    rows = []
    for line in _lines(source, "OxfordIIITPet"):
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise _fail("OxfordIIITPet", f"{source} has a line {line!r} that is not '<image> <class id> ...'")
        rows.append((parts[0], int(parts[1])))
    return rows


def read_oxford_pets(root: Path, split: str) -> Samples:
    check_split("OxfordIIITPet", split)
    base = root / "oxford-iiit-pet"
    lists = {name: base / "annotations" / f"{name}.txt" for name in ("trainval", "test")}
    rows = {name: _pet_rows(path) for name, path in lists.items()}
    # Class names from both lists, so train and test agree: "american_bulldog_12" -> "american bulldog".
    named = rows["trainval"] + rows["test"]
    breeds = {cid: image.rpartition("_")[0].replace("_", " ").lower() for image, cid in named}
    if sorted(breeds) != list(range(1, len(breeds) + 1)):
        raise _fail("OxfordIIITPet", f"{base / 'annotations'} class ids are not 1..{len(breeds)}")
    classnames = [breeds[cid] for cid in range(1, len(breeds) + 1)]
    which = "trainval" if split == "train" else "test"
    source = lists[which]
    paths = [base / "images" / f"{image}.jpg" for image, _ in rows[which]]
    labels = [cid - 1 for _, cid in rows[which]]
    return _samples("OxfordIIITPet", _listed(paths, source, "OxfordIIITPet"), labels, classnames, source)


def read_flowers102(root: Path, split: str) -> Samples:
    check_split("Flowers102", split)
    base = root / "flowers-102"
    labels_file, source = base / "imagelabels.mat", base / "setid.mat"
    image_labels = _loadmat(labels_file, "Flowers102", "labels")["labels"].astype(np.int64)
    sets = _loadmat(source, "Flowers102", "trnid", "valid", "tstid")
    ids = np.concatenate([sets["trnid"], sets["valid"]]) if split == "train" else sets["tstid"]
    ids = ids.astype(np.int64)
    if ids.size and (ids.min() < 1 or ids.max() > len(image_labels)):
        raise _fail("Flowers102", f"{source} has image ids outside 1..{len(image_labels)} of {labels_file}")
    images = _need(base / "jpg", "Flowers102")
    paths = _listed([images / f"image_{i:05d}.jpg" for i in ids], source, "Flowers102")
    return _samples("Flowers102", paths, image_labels[ids - 1] - 1, FLOWERS102_CLASSNAMES, labels_file)


def read_food101(root: Path, split: str) -> Samples:
    check_split("Food101", split)
    base = root / "food-101"
    folders = _lines(base / "meta" / "classes.txt", "Food101")
    source = base / "meta" / f"{split}.json"
    try:
        listing = json.loads(_need(source, "Food101").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise _fail("Food101", f"{source} is not valid JSON ({e})") from None
    if not (isinstance(listing, dict) and all(isinstance(v, list) for v in listing.values())):
        raise _fail("Food101", f"{source} is not a {{class: [class/id, ...]}} object")
    classes = {name: i for i, name in enumerate(folders)}
    paths, labels = [], []
    for cls, entries in sorted(listing.items(), key=lambda item: _index(item[0], classes, source, "Food101")):
        paths += [base / "images" / f"{entry}.jpg" for entry in entries]
        labels += [classes[cls]] * len(entries)
    classnames = [name.replace("_", " ") for name in folders]
    return _samples("Food101", _listed(paths, source, "Food101"), labels, classnames, source)


def read_rendered_sst2(root: Path, split: str) -> Samples:
    check_split("RenderedSST2", split)
    folder = root / "rendered-sst2" / split
    paths, labels = _folder_tree("RenderedSST2", folder, SST2_CLASSNAMES, ".png")
    return _samples("RenderedSST2", paths, labels, SST2_CLASSNAMES, folder)


READERS: dict[str, Callable[[Path, str], Samples]] = {
    "Cars": read_cars,
    "DTD": read_dtd,
    "EuroSAT": read_eurosat,
    "GTSRB": read_gtsrb,
    "RESISC45": read_resisc45,
    "SUN397": read_sun397,
    "OxfordIIITPet": read_oxford_pets,
    "Flowers102": read_flowers102,
    "Food101": read_food101,
    "RenderedSST2": read_rendered_sst2,
}
