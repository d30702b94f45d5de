"""Broken recipes, patches, weights and checkpoints given to ``histo train`` (``training/`` cases).

Each case writes a recipe (a small ``folders`` recipe: two class folders of four
32 x 32 PNG patches, ``mobilenetv3_small_050``, one epoch on the CPU) and breaks
one thing.  Half the cases run ``histo train``, half ``python -m training.cli``
(the same command, as ``torchrun -m training.cli`` runs it).  What a user should see:

* recipes: one ``error:`` line naming the key, the value and a good value (the
  nearest key for a typo), before any data is read;
* data: the file or folder at fault (a damaged JPEG, an empty class folder ...);
  patches of mixed sizes are resized with one ``warning:`` naming two files;
* weights and checkpoints: pickles are refused unread; a run is resumed only with
  the settings and data it was made with, else the error says what changed;
* output folders that are files or not writable: one line, nothing overwritten.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from badinput_cases_models import code_pickle, torch_pickle
from badinput_corpus import Case

Setup = Callable[[Path], None]

BASE: dict[str, Any] = {
    "name": "run",
    "output_dir": "runs",
    "data": {"source": "folders", "root": "patches", "valid_fraction": 0.25},
    "model": {"architecture": "mobilenetv3_small_050", "spacing_um_px": 0.5},
    "augment": {"flips": False, "rot90": False},
    "train": {"batch_size": 4, "device": "cpu", "amp": False, "phases": [{"epochs": 1, "lr": 0.01}]},
}


# -- inputs -------------------------------------------------------------------------------------
def patches(d: Path, classes: dict[str, int] | None = None, px: int = 32, seed: int = 0) -> None:
    """Class folders of distinct noise patches (PNG): ``patches/<class>/<i>.png``."""
    import imagecodecs

    rng = np.random.default_rng(seed)
    for name, count in (classes or {"a": 4, "b": 4}).items():
        folder = d / "patches" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (px, px, 3), dtype=np.uint8)
            (folder / f"{i}.png").write_bytes(imagecodecs.png_encode(pixels))


def edit(recipe: dict[str, Any], key: str, value: Any) -> None:
    """Set (or with ``value=DROP`` remove) a dotted key such as ``train.phases.0.lr``."""
    *parents, last = key.split(".")
    node: Any = recipe
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is DROP:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


DROP = object()


def recipe(
    changes: dict[str, Any] | None = None,
    *,
    text: str | bytes | None = None,
    data: bool = True,
    then: Setup | None = None,
) -> Setup:
    """``recipe.yaml`` (BASE with dotted ``changes``, or raw ``text``) and, with ``data``, the patches."""

    def setup(d: Path) -> None:
        import yaml

        if data:
            patches(d)
        path = d / "recipe.yaml"
        if text is not None:
            path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
        else:
            content = copy.deepcopy(BASE)
            for key, value in (changes or {}).items():
                edit(content, key, value)
            path.write_text(yaml.safe_dump(content, sort_keys=False))
        if then is not None:
            then(d)

    return setup


def chain(*steps: Setup) -> Setup:
    def setup(d: Path) -> None:
        for step in steps:
            step(d)

    return setup


_TRAINED: dict[str, Path] = {}


def trained_run(d: Path) -> None:
    """``runs/run``: one finished training of BASE on ``patches(d)`` (trained once per process, copied)."""
    if "run" not in _TRAINED:
        import atexit

        from training.config import load_config
        from training.run import train

        work = Path(tempfile.mkdtemp(prefix="histo-badinput-run-"))
        atexit.register(shutil.rmtree, work, True)
        recipe()(work)
        cwd = Path.cwd()
        os.chdir(work)
        try:
            train(load_config(work / "recipe.yaml"), progress=False)
        finally:
            os.chdir(cwd)
        _TRAINED["run"] = work / "runs" / "run"
    shutil.copytree(_TRAINED["run"], d / "runs" / "run")


def plant(name: str, make: Callable[[Path], None]) -> Setup:
    """A file at ``runs/run/<name>`` made by ``make`` (a checkpoint from elsewhere)."""

    def setup(d: Path) -> None:
        (d / "runs" / "run").mkdir(parents=True, exist_ok=True)
        make(d / "runs" / "run" / name)

    return setup


def write(name: str, content: bytes | str) -> Setup:
    def setup(d: Path) -> None:
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)

    return setup


def random_bytes(n: int, seed: int = 3) -> bytes:
    return bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8))


def _jpeg(seed: int = 5) -> bytes:
    import imagecodecs

    return imagecodecs.jpeg8_encode(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8))


def corrupt_jpeg(d: Path) -> None:
    """``patches/b/2.jpg``: a JPEG whose Huffman table is overwritten (libjpeg refuses it)."""
    data = bytearray(_jpeg())
    at = data.find(b"\xff\xc4")
    data[at + 4 : at + 30] = b"\xff" * 26
    (d / "patches" / "b" / "2.jpg").write_bytes(bytes(data))


def truncated_jpeg(d: Path) -> None:
    """``patches/a/7.jpg``: the first half of a JPEG (a copy cut short); libjpeg would fill the rest grey."""
    data = _jpeg(6)
    (d / "patches" / "a" / "7.jpg").write_bytes(data[: len(data) // 2])


def odd_size(d: Path) -> None:
    """``patches/a/4.png``: one 48 x 48 patch among 32 x 32 ones."""
    import imagecodecs

    pixels = np.random.default_rng(9).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    (d / "patches" / "a" / "4.png").write_bytes(imagecodecs.png_encode(pixels))


def other_network_checkpoint(path: Path) -> None:
    """A ``last.pt`` of this code's format whose weights belong to another network."""
    import torch

    torch.save({"model": {"conv.weight": torch.zeros(8, 3, 3, 3)}, "phase": 0, "epoch": 1}, path)


def other_state_dict(path: Path) -> None:
    import torch

    torch.save({"conv.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(2, 8)}, path)


def train(*extra: str) -> list[str]:
    """``histo train recipe.yaml --quiet EXTRA``."""
    return ["train", "recipe.yaml", "--quiet", *extra]


def module(*extra: str) -> list[str]:
    """``python -m training.cli recipe.yaml --quiet EXTRA`` (no sub-command)."""
    return ["recipe.yaml", "--quiet", *extra]


CASES: list[Case] = []


def add(name: str, argv: list[str], expect: str, setup: Setup | None = None, **kw: Any) -> None:
    if argv and argv[0] not in ("train", "cluster"):  # module(): python -m training.cli
        kw.setdefault("program", "train")
    CASES.append(Case("training/" + name, argv, expect=expect, setup=setup, **kw))


RUN_FILES = (
    "runs/run/last.pt",
    "runs/run/best.pt",
    "runs/run/config.yaml",
    "runs/run/model/weights.safetensors",
)

# -- the recipe file ----------------------------------------------------------------------------
add("recipe/missing", train(), r"recipe\.yaml: recipe not found")
add(
    "recipe/folder",
    train(),
    r"recipe\.yaml: is a folder, not a recipe",
    lambda d: (d / "recipe.yaml").mkdir(),
)
add("recipe/binary", module(), r"recipe\.yaml: not a text file", recipe(text=random_bytes(3000)))
add("recipe/empty", train(), r"recipe\.yaml: the recipe is empty", recipe(text=""))
add("recipe/comments-only", module(), r"the recipe is empty", recipe(text="# nothing yet\n"))
add(
    "recipe/a-list",
    train(),
    r"a recipe is a mapping of sections .*got a YAML list",
    recipe(text="- data\n- model\n"),
)
add("recipe/plain-text", module(), r"got a YAML text", recipe(text="train me please\n"))
add(
    "recipe/not-yaml",
    train(),
    r"not valid YAML \(.*line 2",
    recipe(text="data: {source: folders\nmodel: [\n"),
)
add("recipe/tabs", module(), r"not valid YAML", recipe(text="data:\n\tsource: folders\n"))
add("recipe/deep-nesting", train(), r"nested too deeply", recipe(text="data: " + "[" * 20_000 + "]" * 20_000))
add("recipe/too-large", module(), r"far too large for a recipe", recipe(text="# padding\n" * 200_000))
add("recipe/no-model-section", train(), r"required key\(s\) model missing", recipe({"model": DROP}))

# -- keys -----------------------------------------------------------------------------------------
add(
    "recipe/unknown-top-key",
    train(),
    r"unknown key 'trian' \(did you mean 'train'\?\)",
    recipe(text="data: {source: synthetic}\nmodel: {architecture: resnet18}\ntrian: {}\n"),
)
add(
    "recipe/unknown-phase-key",
    module(),
    r"unknown key 'train\.phases\[0\]\.lrr' \(did you mean 'train\.phases\[0\]\.lr'\?\)",
    recipe({"train.phases": [{"epochs": 1, "lrr": 0.01}]}),
)
add(
    "recipe/two-unknown-keys",
    train(),
    r"unknown keys 'data\.rot' \(did you mean 'data\.root'\?\), "
    r"'data\.sauce'",
    recipe({"data.rot": "x", "data.sauce": "folders"}),
)
add("recipe/section-is-a-list", module(), r"data: expected a mapping of keys", recipe({"data": ["folders"]}))

# -- values ---------------------------------------------------------------------------------------
add(
    "recipe/lr-negative",
    train(),
    r"train\.phases\[0\]\.lr = -0\.01; give a learning rate above 0",
    recipe({"train.phases.0.lr": -0.01}),
)
add(
    "recipe/lr-zero",
    module(),
    r"train\.phases\[0\]\.lr = 0\.0; give a learning rate above 0",
    recipe({"train.phases.0.lr": 0}),
)
add(
    "recipe/lr-nan",
    train(),
    r"train\.phases\[0\]\.lr: expected a finite number, got nan",
    recipe({"train.phases.0.lr": float("nan")}),
)
add(
    "recipe/lr-text",
    module(),
    r"train\.phases\[0\]\.lr: expected a number, got 'fast'",
    recipe({"train.phases.0.lr": "fast"}),
)
add(
    "recipe/epochs-zero",
    train(),
    r"train\.phases\[0\]\.epochs = 0; give 1 or more epochs",
    recipe({"train.phases.0.epochs": 0}),
)
add("recipe/no-phases", module(), r"train\.phases is empty", recipe({"train.phases": []}))
add(
    "recipe/batch-size-zero",
    train(),
    r"train\.batch_size = 0; give 1 or more",
    recipe({"train.batch_size": 0}),
)
add(
    "recipe/batch-size-text",
    module(),
    r"train\.batch_size: expected a number, got 'big'",
    recipe({"train.batch_size": "big"}),
)
add(
    "recipe/batch-size-fraction",
    train(),
    r"train\.batch_size: expected a whole number, got 2\.5",
    recipe({"train.batch_size": 2.5}),
)
add(
    "recipe/flips-text",
    module(),
    r"augment\.flips: expected true or false, got 'sometimes'",
    recipe({"augment.flips": "sometimes"}),
)
add(
    "recipe/valid-fraction-above-1",
    train(),
    r"data\.valid_fraction = 1\.5; give a fraction",
    recipe({"data.valid_fraction": 1.5}),
)
add(
    "recipe/fractions-leave-nothing",
    module(),
    r"valid_fraction \+ data\.test_fraction = 1 leaves nothing",
    recipe({"data.valid_fraction": 0.5, "data.test_fraction": 0.5}),
)
add(
    "recipe/source-typo",
    train(),
    r"data\.source = 'folder' \(did you mean folders\?\)",
    recipe({"data.source": "folder"}),
)
add(
    "recipe/optimizer-typo",
    module(),
    r"train\.phases\[0\]\.optimizer = 'adamm'; choose one of",
    recipe({"train.phases.0.optimizer": "adamm"}),
)
add("recipe/seed-negative", train(), r"train\.seed = -1", recipe({"train.seed": -1}))
add(
    "recipe/one-class-name",
    module(),
    r"data\.class_names = \['a'\]; a classifier needs two or more",
    recipe({"data.class_names": ["a"]}),
)
add(
    "recipe/name-escapes",
    train(),
    r"name = '\.\./elsewhere'; the run's name is one plain folder name",
    recipe({"name": "../elsewhere"}),
)
add(
    "recipe/unknown-architecture",
    module(),
    r"'resnet9000' is not a timm model; did you mean",
    recipe({"model.architecture": "resnet9000"}),
)
add(
    "recipe/segmentation-as-classifier",
    train(),
    r"'unet:resnet34' is a segmentation network; set task",
    recipe({"model.architecture": "unet:resnet34"}),
)
add(
    "recipe/device-banana",
    module(),
    r"device 'banana' is not a device name",
    recipe({"train.device": "banana"}),
    exit_code=2,  # the same refusal as `--device banana`
)

# -- overrides on the command line ----------------------------------------------------------------
add("set/not-key-value", train("train.batch_size"), r"give one recipe, then overrides as key=value", recipe(),
    exit_code=2)  # fmt: skip
add("set/bad-yaml-value", module("--set", "train.phases=[{epochs: 1"), r"--set .*not valid YAML", recipe())
add("set/no-such-phase", train("train.phases[3].lr=0.1"), r"there is no item \[3\]", recipe())
add("set/lr-negative", module("train.phases[0].lr=-1"), r"train\.phases\[0\]\.lr = -1\.0", recipe())
add(
    "set/typo",
    train("--set", "train.batchsize=8"),
    r"'train\.batchsize' \(did you mean 'train\.batch_size'\?\)",
    recipe(),
)

# -- the patches ----------------------------------------------------------------------------------
add("data/missing-root", module(), r"patches: data folder not found", recipe(data=False))
add(
    "data/empty-class-folder",
    train(),
    r"class folder .*patches/c is empty",
    recipe(then=lambda d: (d / "patches" / "c").mkdir()),
)
add(
    "data/only-text-files",
    module(),
    r"class folder .*patches/c is empty",
    recipe(then=write("patches/c/readme.txt", "no images here")),
)
add(
    "data/single-class",
    train(),
    r"only one class \['a'\]",
    recipe(then=lambda d: shutil.rmtree(d / "patches" / "b")),
)
add(
    "data/corrupt-jpeg",
    module(),
    r"patches/b/2\.jpg: cannot be decoded as an image",
    recipe(then=corrupt_jpeg),
)
add(
    "data/text-as-png",
    train(),
    r"patches/a/9\.png: cannot be decoded as an image",
    recipe(then=write("patches/a/9.png", "not a picture")),
)
add("data/truncated-jpeg", train(), r"patches/a/7\.jpg: the JPEG is truncated", recipe(then=truncated_jpeg))
add(
    "data/mixed-sizes",
    module(),
    r"patches are not 32 x 32 px like the training set \(e\.g\. .*a/4\.png is "
    r"48 x 48 px, .*32 x 32 px\); they are resized",
    recipe(then=odd_size),
    kind="handled",
)

# -- where the run goes ---------------------------------------------------------------------------
add(
    "out/is-a-file",
    train(),
    r"runs is a file, so the run folder .* cannot be made",
    recipe(then=write("runs", "my notes")),
    keep=("runs",),
)
if Path("/sys/kernel").is_dir() and os.geteuid() == 0:  # root writes anywhere but in /sys (EPERM)
    add(
        "out/not-writable",
        module("output_dir=/sys/kernel/histo-runs"),
        r"cannot write the run folder",
        recipe(),
    )
elif os.geteuid() != 0:
    add(
        "out/not-writable",
        module("output_dir=ro"),
        r"cannot write the run folder",
        recipe(then=lambda d: ((d / "ro").mkdir(), os.chmod(d / "ro", 0o555))),
    )

# -- start weights ----------------------------------------------------------------------------------
add(
    "weights/missing",
    train(),
    r"model\.weights = 'nope\.pth': not found",
    recipe({"model.weights": "nope.pth"}),
)
add(
    "weights/folder",
    module(),
    r"model\.weights = 'w': is a folder",
    recipe({"model.weights": "w"}, then=lambda d: (d / "w").mkdir()),
)
add(
    "weights/pickle-that-runs-code",
    train(),
    r"w\.pth: holds Python objects besides tensors.*refused",
    recipe({"model.weights": "w.pth"}, then=lambda d: torch_pickle(d / "w.pth")),
)
add(
    "weights/plain-pickle",
    module(),
    r"w\.pth: holds Python objects besides tensors",
    recipe({"model.weights": "w.pth"}, then=write("w.pth", code_pickle())),
)
add(
    "weights/random-bytes",
    train(),
    r"w\.pth: not a PyTorch weight file",
    recipe({"model.weights": "w.pth"}, then=write("w.pth", random_bytes(2000))),
)
add(
    "weights/safetensors-garbage",
    module(),
    r"w\.safetensors: not a readable safetensors file",
    recipe({"model.weights": "w.safetensors"}, then=write("w.safetensors", random_bytes(2000))),
)
add(
    "weights/other-architecture",
    train(),
    r"w\.pth: weight file has 2 tensors but the model has .*another",
    recipe({"model.weights": "w.pth"}, then=lambda d: other_state_dict(d / "w.pth")),
)

# -- resuming -------------------------------------------------------------------------------------
add(
    "resume/checkpoint-runs-code",
    module(),
    r"last\.pt: holds Python objects .*not written by histo train",
    recipe(then=plant("last.pt", torch_pickle)),
    keep=("runs/run/last.pt",),
)
add(
    "resume/checkpoint-plain-pickle",
    train(),
    r"last\.pt: holds Python objects",
    recipe(then=plant("last.pt", lambda p: p.write_bytes(code_pickle()))),
    keep=("runs/run/last.pt",),
)
add(
    "resume/checkpoint-garbage",
    module(),
    r"last\.pt: unreadable checkpoint .*delete it to start again",
    recipe(then=plant("last.pt", lambda p: p.write_bytes(random_bytes(4000)))),
    keep=("runs/run/last.pt",),
)
add(
    "resume/checkpoint-without-weights",
    train(),
    r"last\.pt: holds a dict without model weights",
    recipe(then=plant("last.pt", lambda p: torch_pickle(p, {"epoch": 1}))),
    keep=("runs/run/last.pt",),
)
add(
    "resume/checkpoint-of-another-network",
    module(),
    r"last\.pt does not fit this recipe's network",
    recipe(then=plant("last.pt", other_network_checkpoint)),
    keep=("runs/run/last.pt",),
)
add(
    "resume/other-learning-rate",
    train("train.phases[0].lr=0.001"),
    r"last\.pt was made with other settings \(train\.phases\[0\]\.lr: 0\.01 then, 0\.001 now\)",
    recipe(then=trained_run),
    keep=RUN_FILES,
)
add(
    "resume/other-architecture",
    module("model.architecture=resnet10t"),
    r"other settings \(model\.architecture: \"mobilenetv3_small_050\" then, \"resnet10t\" now\)",
    recipe(then=trained_run),
    keep=RUN_FILES,
)
add(
    "resume/other-data",
    train(),
    r"last\.pt was made from other training data",
    recipe(then=chain(trained_run, lambda d: patches(d, {"a": 6}, seed=11))),
    keep=RUN_FILES,
)

# -- histo cluster --------------------------------------------------------------------------------
CLUSTER = ["cluster", "patches/a", "patches/b", "--architecture", "resnet10t", "--out", "clusters"]
add(
    "cluster/empty-folder",
    [*CLUSTER[:2], "empty", *CLUSTER[3:]],
    r"empty: no image files",
    chain(patches, lambda d: (d / "empty").mkdir()),
)
add(
    "cluster/one-folder",
    CLUSTER[:2] + CLUSTER[3:],
    r"1 folder given; clustering compares two or more",
    patches,
)
add(
    "cluster/unknown-architecture",
    [*CLUSTER[:3], "--architecture", "resnet9000"],
    r"'resnet9000' is not a timm model",
    patches,
)
add(
    "cluster/weights-missing",
    [*CLUSTER, "--weights", "nope.pth"],
    r"nope\.pth: weight file not found",
    patches,
)
add(
    "cluster/weights-run-code",
    [*CLUSTER, "--weights", "w.pth"],
    r"w\.pth: holds Python objects besides tensors",
    chain(patches, lambda d: torch_pickle(d / "w.pth")),
)
add("cluster/corrupt-jpeg", CLUSTER, r"patches/b/2\.jpg: cannot be decoded", chain(patches, corrupt_jpeg))

# -- other data sources -----------------------------------------------------------------------------
LABELS = {"data.source": "labels_csv", "data.labels_csv": "labels.csv", "data.root": "patches"}
add(
    "data/labels-csv-binary",
    module(),
    r"labels\.csv: not a text file",
    recipe(LABELS, then=write("labels.csv", random_bytes(500))),
)
add(
    "data/labels-csv-no-label-column",
    train(),
    r"labels\.csv: needs columns path and label; missing \['label'\]",
    recipe(LABELS, then=write("labels.csv", "path,class\na/0.png,a\n")),
)
add(
    "data/labels-csv-missing-patch",
    module(),
    r"patches/a/77\.png: patch file not found",
    recipe(LABELS, then=write("labels.csv", "path,label\na/0.png,a\na/77.png,a\nb/0.png,b\nb/1.png,b\n")),
)
add(
    "data/slides-missing",
    train(),
    r"nope\.svs",
    recipe(
        {
            "data": {"source": "slides", "slides": ["nope.svs"], "annotations": ["nope.geojson"]},
            "data.class_names": ["a", "b"],
        }
    ),
)
add(
    "data/corrupt-jpeg-read-by-workers",
    train("data.cache=false", "train.num_workers=1"),
    r"patches/b/2\.jpg: cannot be decoded as an image",
    recipe(then=corrupt_jpeg),
)
