"""Reading a compressed store: :class:`Store` checks the manifest on open, every file's size
and checksum while the first model is rebuilt (nothing is written or returned before that check
passes), and each decoded mask against its own checksum.

Any task is rebuilt from the base, the vector and its own mask streams, in the same time for
every task: to a file (:meth:`Store.reconstruct`, or every task in one pass with
:meth:`Store.reconstruct_all`), as a state dict (:meth:`Store.state`) or into a loaded model in
place (:meth:`Store.apply`, to switch a served model between tasks without files). Entries are
read and decoded in parallel threads (:mod:`tallmerge.store.pool`), and written in order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from tallmerge.errors import TallmergeError, one_line
from tallmerge.formats.files import refuse_special, temporary_dir
from tallmerge.formats.tensorfile import DTYPES, TensorFile, write_tensors
from tallmerge.merging.maths import all_finite
from tallmerge.merging.recipes import MultiTaskVector
from tallmerge.store import codec
from tallmerge.store.manifest import (
    FILES,
    FORMAT,
    LENGTHS,
    MANIFEST,
    MANIFEST_DIGEST,
    MISSING,
    PROBABILITIES,
    VERSION,
    Corrupted,
    field,
    file_sha256,
    manifest_digest,
    stored_parts,
    streams_key,
)
from tallmerge.store.pool import ordered_map


class Store:
    """A store opened for reading: the manifest is checked on open, the files' checksums on
    :meth:`verify` (done once, beside the first model's decoding)."""

    READS = (VERSION,)  # the format versions this class reads

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not self.path.is_dir():
            raise TallmergeError(f"{self.path}: no such store (not a folder)")
        if not manifest_path.is_file():
            raise TallmergeError(f"{manifest_path}: missing; {self.path} is not a complete tallmerge store")
        try:
            manifest = json.loads(manifest_path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise TallmergeError(f"{manifest_path}: corrupted manifest (not JSON)") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise TallmergeError(f"{manifest_path}: not a tallmerge store manifest")
        version = manifest.get("version")
        if version == 1 and "scheme" not in manifest:
            raise TallmergeError(
                f"{manifest_path}: store format version 1 (its tasks decode in sequence); this tallmerge "
                f"reads version {VERSION}: rebuild it from the checkpoints with `tallmerge compress` "
                "(the manifest's 'masks', 'mtv' and 'vector_dtype' record the options)"
            )
        if version not in self.READS:
            raise TallmergeError(
                f"{manifest_path}: store format version {version!r}, this tallmerge reads "
                f"{' and '.join(map(str, self.READS))}"
            )
        try:
            self._read_manifest(manifest)
        except Corrupted as e:
            raise TallmergeError(f"{manifest_path}: corrupted manifest ({e})") from None
        if manifest.get(MANIFEST_DIGEST) != manifest_digest(manifest):
            what = (
                "has no checksum: written by an older tallmerge, rebuild it with `tallmerge compress`"
                if MANIFEST_DIGEST not in manifest
                else "altered since it was written: its checksum does not match"
            )
            raise TallmergeError(f"{manifest_path}: {what}")
        self.manifest = manifest
        self._verified = False

    def _read_manifest(self, manifest: dict) -> None:
        """Every field, typed and consistent with the others (else :class:`Corrupted`)."""
        tasks = field(manifest, "tasks", list)
        if not tasks or not all(isinstance(t, str) and t for t in tasks) or len(set(tasks)) != len(tasks):
            raise Corrupted("'tasks' must list distinct task names")
        self.tasks: list[str] = tasks
        dtype = field(manifest, "vector_dtype", str)
        if dtype not in codec.FORMATS:
            raise Corrupted(f"unknown vector_dtype {dtype[:20]!r}")
        self.vector_format = dtype
        self.tensors = []
        for entry in field(manifest, "tensors", list):
            if not isinstance(entry, dict):
                raise Corrupted("a 'tensors' entry is not an object")
            key, name, shape = (
                field(entry, "key", str),
                field(entry, "dtype", str),
                field(entry, "shape", list),
            )
            vector_codec = entry.get("vector", MISSING)
            if name not in DTYPES or not all(type(d) is int and d >= 0 for d in shape):
                raise Corrupted(f"tensor '{key}' has a bad dtype or shape")
            if (
                vector_codec is MISSING
                or (vector_codec is not None) != DTYPES[name].is_floating_point
                or not (vector_codec is None or isinstance(vector_codec, str))
            ):
                raise Corrupted(f"tensor '{key}' has a bad vector codec")
            self.tensors.append((key, DTYPES[name], tuple(shape), vector_codec))
        if len({key for key, *_ in self.tensors}) != len(self.tensors):
            raise Corrupted("a tensor is listed twice")
        files = field(manifest, "files", dict)
        self.files = {}
        for part, name in FILES.items():
            entry = field(files, part, dict)
            size, digest = field(entry, "bytes", int), field(entry, "sha256", str)
            if field(entry, "name", str) != name:  # the names are fixed: a manifest never points elsewhere
                raise Corrupted(f"unexpected file names: {entry['name'][:40]!r} for the {part} file")
            if size < 0 or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise Corrupted(f"bad size or checksum for the {part} file")
            self.files[part] = (self.path / name, size, digest)
        masks = field(manifest, "mask_sha256", dict)
        if set(masks) != set(self.tasks) or not all(isinstance(v, str) for v in masks.values()):
            raise Corrupted("'mask_sha256' must have one checksum per task")
        self.mask_sha256 = dict(masks)
        try:
            self.mtv = MultiTaskVector.from_dict(field(manifest, "mtv", dict))
        except (KeyError, TypeError, TallmergeError):
            raise Corrupted("bad 'mtv'") from None
        self.made = field(manifest, "masks", dict)
        if self.made.get("kind") == "tall":
            lambdas = self.made.get("lambdas")
            if (
                not isinstance(lambdas, dict)
                or set(lambdas) != set(self.tasks)
                or not all(type(v) in (int, float) for v in lambdas.values())
            ):
                raise Corrupted("'masks' must give a lambda per task")
        elif self.made.get("kind") == "emr":
            rescalers = self.made.get("rescalers")
            if (
                not isinstance(rescalers, dict)
                or set(rescalers) != set(self.tasks)
                or not all(type(v) in (int, float) and math.isfinite(v) for v in rescalers.values())
            ):
                raise Corrupted("'masks' of EMR must give a rescaler per task")
        elif self.made.get("kind") != "magnitude" or type(self.made.get("topk")) not in (int, float):
            raise Corrupted(
                "'masks' must be TALL masks with lambdas, magnitude masks with a top-k, or EMR masks with rescalers"
            )
        self.weights = field(manifest, "weights", int)
        counted = sum(math.prod(shape) for _, _, shape, c in self.tensors if c is not None)
        if self.weights != counted:
            raise Corrupted(f"'weights' is {self.weights}, the tensors hold {counted}")
        mask_bytes = field(manifest, "mask_bytes", dict)
        if set(mask_bytes) != set(self.tasks) or not all(
            type(v) is int and v >= 0 for v in mask_bytes.values()
        ):
            raise Corrupted("'mask_bytes' must have one size per task")
        if field(manifest, "finetuned_bytes", int) < 0:
            raise Corrupted("negative 'finetuned_bytes'")

    def verify(self) -> None:
        """Every file present, of the recorded size and SHA-256, and the base's tensors those
        the manifest lists; an error says what is wrong with each file that is."""
        problems = []
        for path, size, digest in self.files.values():
            try:
                if not path.is_file():
                    problems.append(f"{path}: missing from the store")
                elif path.stat().st_size != size:
                    problems.append(
                        f"{path}: corrupted store file ({path.stat().st_size} bytes, the manifest records {size})"
                    )
                elif file_sha256(path) != digest:
                    problems.append(f"{path}: corrupted store file (checksum does not match the manifest)")
            except OSError as e:
                problems.append(f"{path}: could not be verified ({e.strerror or one_line(e)})")
        if problems:
            raise TallmergeError("; ".join(problems))
        with TensorFile(self.files["base"][0]) as base:
            listed = [(key, dtype, shape) for key, dtype, shape, _ in self.tensors]
            if listed != [(key, base.dtype(key), base.shape(key)) for key in base.keys]:
                raise TallmergeError(
                    f"{self.path / MANIFEST}: corrupted manifest (its tensors are not the base's)"
                )
        self._verified = True

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise TallmergeError(
                f"{self.path}: no task '{task}' in this store (available: {', '.join(self.tasks)})"
            )

    def model(self, task: str) -> Iterator[tuple[str, torch.Tensor]]:
        """Task ``task``'s rebuilt weights, ``(key, tensor)`` one entry at a time in file order:
        theta_0 + m_t * v for floating-point entries (computed in float32, stored in the base's
        dtype), theta_0 for the others. The files' checksums (on first use) and the decoded masks'
        are checked after the last entry, so consume the whole iterator (as
        :meth:`state`, :meth:`apply` and :meth:`reconstruct` do) before trusting the result."""
        for key, (tensor,) in self._rebuild([task]):
            yield key, tensor

    def state(self, task: str) -> dict[str, torch.Tensor]:
        """Task ``task``'s rebuilt weights in memory."""
        return dict(self.model(task))

    def apply(self, task: str, module: torch.nn.Module) -> None:
        """Load task ``task``'s weights into ``module`` in place (a model whose state dict has the
        store's keys, e.g. the visual encoder the checkpoints came from): switch a loaded model
        between tasks without files. The task is decoded and checked in full first, so a failure
        leaves ``module`` as it was."""
        params = module.state_dict()
        missing = [key for key, *_ in self.tensors if key not in params]
        if missing or len(params) != len(self.tensors):
            extra = sorted(set(params) - {key for key, *_ in self.tensors})
            raise TallmergeError(
                f"{self.path}: the model does not have the store's weights "
                f"({f'missing {missing[0]!r}' if missing else f'extra {extra[0]!r}'})"
            )
        rebuilt = self.state(task)
        for key, target in params.items():
            if target.shape != rebuilt[key].shape:
                raise TallmergeError(
                    f"{self.path}: the model's '{key}' is {list(target.shape)}, the store's {list(rebuilt[key].shape)}"
                )
        with torch.no_grad():
            for key, target in params.items():
                target.copy_(rebuilt.pop(key))

    def reconstruct(self, task: str, out: str | os.PathLike) -> None:
        """Write task ``task``'s rebuilt model to ``out`` (safetensors, the base's keys and
        dtypes), atomically: a failed check leaves nothing behind."""
        self._check_task(task)
        specs = [(key, dtype, shape) for key, dtype, shape, _ in self.tensors]
        with write_tensors(out, specs, self._metadata(task)) as put:
            for key, tensor in self.model(task):
                put(key, tensor)

    def reconstruct_all(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write every task's rebuilt model to ``out_dir/<task>.safetensors`` in one pass over the
        store (each entry's vector is read and decoded once for all tasks); returns their paths.

        All or nothing: everything is checked before anything is created (the task names, the
        store's files, the targets), the models are written into a temporary folder, and only
        complete ones are placed: a folder that did not exist appears whole, by one rename; in
        one that did, only regular files are ever replaced."""
        out_dir = Path(out_dir)
        names = [f"{task}.safetensors" for task in self.tasks]
        if any("/" in name or name.startswith(".") for name in names):
            raise TallmergeError(f"{self.path}: a task name cannot be a file name; use reconstruct --task")
        missing = [path for path, _, _ in self.files.values() if not path.is_file()]
        if missing:
            raise TallmergeError(f"{missing[0]}: missing from the store")
        fresh = not os.path.lexists(out_dir)
        if not fresh:
            if not out_dir.is_dir():
                raise TallmergeError(f"{out_dir}: exists and is not a folder")
            for task, name in zip(self.tasks, names):
                target = out_dir / name
                refuse_special(target, "output")
                if target.is_dir():
                    raise TallmergeError(f"{target}: is a folder; refusing to replace it with task '{task}'")
        specs = [(key, dtype, shape) for key, dtype, shape, _ in self.tensors]
        with (
            temporary_dir(out_dir if fresh else out_dir / "reconstruct") as tmp,
            contextlib.ExitStack() as files,
        ):
            puts = [
                files.enter_context(write_tensors(Path(tmp) / name, specs, self._metadata(task)))
                for task, name in zip(self.tasks, names)
            ]
            for key, tensors in self._rebuild(self.tasks):
                for put, tensor in zip(puts, tensors):
                    put(key, tensor)
            files.close()  # every file complete: move them into place together
            if fresh:
                os.rename(tmp, out_dir)
            else:
                for name in names:
                    os.replace(Path(tmp) / name, out_dir / name)
        return [out_dir / name for name in names]

    def _rebuild(self, tasks: list[str]) -> Iterator[tuple[str, list[torch.Tensor]]]:
        """``(key, [rebuilt tensor of each task])`` per entry in file order; each task's decoded
        masks are checked against their checksum after the last entry."""
        for task in tasks:
            self._check_task(task)
        with self._verifying() as verified:
            yield from self._decode(tasks)
            verified()

    @contextlib.contextmanager
    def _verifying(self) -> Iterator[Callable[[], None]]:
        """Verify the files (:meth:`verify`, once per store) in a thread while the caller decodes,
        which reads them anyway: the caller calls the function it is given before trusting its
        result, and that raises verification's error. If the decoding fails first, verification's
        error (when it has one) is the one raised: a corrupted file is reported as such, not as
        whatever decoding it produced."""
        if self._verified:
            yield lambda: None
            return
        with ThreadPoolExecutor(1) as pool:
            checking = pool.submit(self.verify)
            try:
                yield checking.result
            except Exception:
                if checking.exception() is not None:
                    raise checking.exception() from None
                raise

    def _decode(self, tasks: list[str]) -> Iterator[tuple[str, list[torch.Tensor]]]:
        indices = [self.tasks.index(task) for task in tasks]
        rescalers = self.made.get("rescalers") if self.made.get("kind") == "emr" else None
        base_path, vector_path, masks_path = (self.files[p][0] for p in FILES)
        with (
            TensorFile(base_path) as base,
            TensorFile(vector_path) as vectors,
            TensorFile(masks_path) as masks,
        ):
            entry_index = {key: n for n, (key, *_) in enumerate(e for e in self.tensors if e[3] is not None)}
            tables, streams = self._mask_streams(masks, masks_path, indices, len(entry_index))

            def decode(entry):  # in a worker thread: one entry for every task asked for
                key, dtype, shape, vector_codec = entry
                theta = base.get(key)
                if vector_codec is None:
                    return key, [theta] * len(indices), []
                table = tables[entry_index[key]]
                vector = codec.decode_vector(
                    vector_codec, stored_parts(vectors, key), self.vector_format, shape
                )
                base_values, values = theta.float(), vector.float()
                positions = codec.Positions(values)
                added = None if rescalers else base_values + values  # theta_0 + v, shared by the tasks
                rebuilt, packed = [], []
                for task, i in zip(tasks, indices):
                    bits = codec.decode_bits(streams[i][entry_index[key]], positions, table[i])
                    packed.append(codec.bits_digest(bits))
                    if rescalers is not None:  # EMR: theta_0 + s_t * v where m_t is on
                        added = base_values + values * rescalers[task]
                    # theta_0 + m_t * v: theta_0 + v where the mask is on, theta_0 itself elsewhere
                    tensor = torch.where(positions.mask(bits), added, base_values).to(dtype)
                    if not all_finite(tensor):
                        raise TallmergeError(
                            f"{self.path}: task '{task}' rebuilds tensor '{key}' beyond what {dtype} holds"
                        )
                    rebuilt.append(tensor)
                return key, rebuilt, packed

            digests = [hashlib.sha256() for _ in tasks]
            for key, rebuilt, packed in ordered_map(decode, self.tensors):
                for digest, bits in zip(digests, packed):
                    digest.update(bits)
                yield key, rebuilt
            for task, digest in zip(tasks, digests):
                if digest.hexdigest() != self.mask_sha256[task]:
                    raise TallmergeError(
                        f"{masks_path}: task '{task}' decodes to masks that do not match their checksum"
                    )

    def _mask_streams(self, masks: TensorFile, path: Path, indices: list[int], entries: int):
        """The ``entries`` coded entries' mask models and, for each task index asked for, its
        streams per entry."""
        tables, lengths = masks.get(PROBABILITIES), masks.get(LENGTHS)
        if (
            tables.dtype != torch.uint16
            or tuple(tables.shape) != (entries, len(self.tasks), codec.BUCKETS)
            or lengths.dtype != torch.int64
            or tuple(lengths.shape) != (len(self.tasks), entries)
            or (lengths < 0).any()
        ):
            raise TallmergeError(f"{path}: corrupted mask models or stream lengths")
        streams = {}
        for i in indices:
            words = masks.get(streams_key(i))
            if words.dtype != torch.uint32 or words.numel() != int(lengths[i].sum()):
                raise TallmergeError(f"{path}: corrupted streams of task '{self.tasks[i]}'")
            streams[i] = words.split(lengths[i].tolist())
        return tables, streams

    def _metadata(self, task: str) -> dict:
        return {"store": str(self.path), "task": task, **self._made_how()}

    def _made_how(self) -> dict:
        """What a rebuilt model's metadata records of how the store was made."""
        return {"masks": self.made, "vector_dtype": self.manifest["vector_dtype"]}

    # -- sizes --
    def sizes(self) -> dict:
        """Bytes on disk by component, bits per weight, and the fine-tuned checkpoints' bytes."""
        nbytes = {part: size for part, (_, size, _) in self.files.items()}
        nbytes["manifest"] = (self.path / MANIFEST).stat().st_size
        nbytes["total"] = sum(nbytes.values())
        tasks, weights = len(self.tasks), max(self.weights, 1)
        return {
            "bytes": nbytes,
            "finetuned_bytes": int(self.manifest["finetuned_bytes"]),
            "bits_per_weight": {
                "vector": 8 * nbytes["vector"] / weights,
                "mask": 8 * nbytes["masks"] / (weights * tasks),
            },
            "mask_bits_per_weight_by_task": {
                t: 8 * int(b) / weights for t, b in self.manifest["mask_bytes"].items()
            },
        }

    def describe(self) -> str:
        """What ``tallmerge info`` prints, once every file is verified."""
        if not self._verified:
            self.verify()
        sizes = self.sizes()
        made = self.made
        if made.get("kind") == "tall":
            how = "TALL masks, lambda " + ", ".join(f"{t}={made['lambdas'][t]:g}" for t in self.tasks)
        elif made.get("kind") == "emr":
            how = "EMR masks (tau_t agrees with the unified vector), rescaled by " + ", ".join(
                f"{t}={made['rescalers'][t]:.4g}" for t in self.tasks
            )
        else:
            how = f"magnitude masks, top-{made.get('topk')}% of each task vector"
        nbytes, bpw = sizes["bytes"], sizes["bits_per_weight"]
        lines = [
            f"{self.path}: {FORMAT} format version {self.manifest['version']}",
            f"tasks ({len(self.tasks)}, in coding order): {', '.join(self.tasks)}",
            f"masks: {how}",
            f"merged vector: {self.mtv}, stored as {self.manifest['vector_dtype']}",
            f"weights per model: {self.weights:,} (floating-point entries of {sum(1 for *_, c in self.tensors if c is not None)} tensors)",
            "",
            f"{'component':<10} {'bytes':>14} {'bits/weight':>12}",
            f"{'base':<10} {nbytes['base']:>14,} {8 * nbytes['base'] / self.weights:>12.2f}",
            f"{'vector':<10} {nbytes['vector']:>14,} {bpw['vector']:>12.2f}",
            f"{'masks':<10} {nbytes['masks']:>14,} {bpw['mask']:>12.3f}  per task mask",
            f"{'manifest':<10} {nbytes['manifest']:>14,}",
            f"{'total':<10} {nbytes['total']:>14,}   "
            f"({100 * nbytes['total'] / max(sizes['finetuned_bytes'], 1):.1f}% of the fine-tuned checkpoints' {sizes['finetuned_bytes']:,})",
            "",
            "mask bits per weight by task: "
            + ", ".join(f"{t} {b:.3f}" for t, b in sizes["mask_bits_per_weight_by_task"].items()),
            "",
            "verified: every file has the size and SHA-256 that the manifest records",
        ]
        return "\n".join(lines)
