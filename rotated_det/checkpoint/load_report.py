"""LoadReport: what loading a checkpoint into a model did, as one table."""

from dataclasses import dataclass, field

__all__ = ["LoadReport"]


def _examples(names: list[str], n: int) -> str:
    shown = ", ".join(names[:n])
    return shown + (f", ... (+{len(names) - n})" if len(names) > n else "")


@dataclass
class LoadReport:
    """Counts and names of one checkpoint load.

    Attributes:
        filename: the file read.
        source_format: layout recognised in the file ("torchvision", "msra", "detectron2",
            "as is"; see ``resnet_conversion``), or "part" (one part's own checkpoint; see
            ``part_placement``).
        resnet_prefix: where the converted ResNet tensors (or the "part" tensors) went in the
            model ("" for a bare ResNet), None when the model has no ResNet.
        matched: model keys that received a value from the file.
        renamed: model key -> file key, for matched keys whose name was converted.
        adapted: model key -> what was done to the value, for matched keys (e.g. the first
            convolution rewritten for the model's input normalisation).
        ignored: file keys dropped on purpose (classifier, step counters, non-tensor values).
        unmatched: file keys (after conversion) that name nothing in the model.
        incompatible_shapes: ``(key, shape in file, shape in model)``, not loaded.
        missing: model keys that received nothing (they keep their initial values).
        warnings: differences between the file's network and the model.
    """

    filename: str
    source_format: str
    resnet_prefix: str | None = None
    matched: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    adapted: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    incompatible_shapes: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        """Something the user did not ask for: unmatched file tensors, shapes that differ, a
        warning, or missing tensors where the file was expected to provide them (inside the
        converted ResNet, or anywhere for a file loaded by name)."""
        if self.unmatched or self.incompatible_shapes or self.warnings:
            return True
        if self.source_format in ("torchvision", "msra", "part") and self.resnet_prefix is not None:
            return any(k.startswith(self.resnet_prefix) for k in self.missing)
        return bool(self.missing)

    def table(self, examples: int = 3) -> str:
        """A text table: one row per outcome with its count and a few names."""
        where = ""
        if self.source_format in ("torchvision", "msra", "detectron2") and self.resnet_prefix:
            where = f" -> ResNet at '{self.resnet_prefix}'"
        elif self.source_format == "part" and self.resnet_prefix:
            where = f" of one part, placed at '{self.resnet_prefix}'"
        converted = [
            f"{k}{f' (from {self.renamed[k]})' if k in self.renamed else ''}: {what}"
            for k, what in self.adapted.items()
        ]
        converted += [f"{src} -> {k}" for k, src in self.renamed.items() if k not in self.adapted]
        shapes = [f"{k}: checkpoint {a} vs model {b}" for k, a, b in self.incompatible_shapes]
        rows = [
            ("matched", self.matched),
            ("  of which converted", converted),
            ("ignored on purpose", self.ignored),
            ("unmatched in the file", self.unmatched),
            ("incompatible shapes (skipped)", shapes),
            ("missing in the model", self.missing),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [f"Loaded {self.filename} ({self.source_format} names{where}):"]
        lines += [
            f"  {label:<{width}} {len(names):>6}  {_examples(names, examples)}".rstrip()
            for label, names in rows
        ]
        lines += [f"  note: {w}" for w in self.warnings]
        return "\n".join(lines)
