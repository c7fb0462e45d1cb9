"""Tag browser model: every attribute of an instance as a tree (sequences → items → attributes), with private
tags named by their Private Creator, and a search over tag numbers, keywords, names and values."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import private_dictionary_description
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
_MAX_VALUE_CHARS = 256
_DEFER_BYTES = 64 * 1024


@dataclass
class TagNode:
    path: str  # "(0040,A730)[0](0040,A043)[0](0008,0104)"; stable key for the UI
    tag: str  # "(0010,0010)", or "Item 1" for sequence items
    keyword: str
    name: str
    vr: str
    vm: int
    value: str
    length: int = 0
    private_creator: str = ""
    children: list[TagNode] = field(default_factory=list)
    is_item: bool = False

    def walk(self) -> Iterator[TagNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    def matches(self, needle: str) -> bool:
        """Case-insensitive match on tag (with or without punctuation), keyword, name, creator or value."""
        if not needle:
            return True
        n = needle.lower().strip()
        compact = self.tag.lower().replace("(", "").replace(")", "").replace(",", "")
        n_compact = n.replace("(", "").replace(")", "").replace(",", "").replace(" ", "")
        return (
            n in self.tag.lower()
            or (bool(n_compact) and n_compact in compact)
            or n in self.keyword.lower()
            or n in self.name.lower()
            or n in self.private_creator.lower()
            or n in self.value.lower()
        )


def format_tag(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def load_tags(path: Path | str, *, include_pixels: bool = False) -> list[TagNode]:
    # Large values (pixel data, big private blobs) stay deferred on disk: the browser shows their size only.
    ds = pydicom.dcmread(path, defer_size=None if include_pixels else _DEFER_BYTES, force=True)
    return tag_tree(ds)


def tag_tree(ds: Dataset) -> list[TagNode]:
    """Top-level nodes: the file meta group first (when present), then the dataset."""
    nodes: list[TagNode] = []
    meta = getattr(ds, "file_meta", None)
    if meta:
        nodes.extend(_dataset_nodes(meta, ""))
    nodes.extend(_dataset_nodes(ds, ""))
    return nodes


def _dataset_nodes(ds: Dataset, prefix: str) -> list[TagNode]:
    nodes = []
    for tag in sorted(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if raw is not None and getattr(raw, "value", b"") is None and getattr(raw, "length", 0):
            nodes.append(_deferred_node(ds, raw, prefix))
            continue
        nodes.append(_element_node(ds, ds[tag], prefix))
    return nodes


def _deferred_node(ds: Dataset, raw: object, prefix: str) -> TagNode:
    tag = BaseTag(raw.tag)  # type: ignore[attr-defined]
    length = int(raw.length)  # type: ignore[attr-defined]
    from pydicom.datadict import dictionary_description, dictionary_keyword

    known = tag in pydicom.datadict.DicomDictionary
    return TagNode(
        path=f"{prefix}{format_tag(tag)}",
        tag=format_tag(tag),
        keyword=dictionary_keyword(tag) if known else "",
        name=dictionary_description(tag) if known else "Private tag",
        vr=str(raw.VR or (pydicom.datadict.dictionary_VR(tag) if known else "UN")),  # type: ignore[attr-defined]
        vm=1,
        value=f"<{length} bytes of binary data>",
        length=length,
        private_creator=_private_creator(ds, tag),
    )


def _private_creator(ds: Dataset, tag: BaseTag) -> str:
    if not tag.is_private or tag.is_private_creator:
        return ""
    creator_tag = BaseTag((tag.group << 16) | (tag.element >> 8))
    if creator_tag in ds:
        return str(ds[creator_tag].value).strip()
    return ""


def _element_node(ds: Dataset, elem: DataElement, prefix: str) -> TagNode:
    tag = BaseTag(elem.tag)
    path = f"{prefix}{format_tag(tag)}"
    creator = _private_creator(ds, tag)
    name = elem.name
    keyword = elem.keyword or ""
    if tag.is_private_creator:
        name = "Private Creator"
    elif tag.is_private:
        name = "Private tag"
        if creator:
            try:
                name = private_dictionary_description(tag, creator)
            except KeyError:
                name = f"Private tag of {creator}"
    node = TagNode(
        path=path,
        tag=format_tag(tag),
        keyword=keyword,
        name=name,
        vr=str(elem.VR),
        vm=elem.VM,
        value="",
        length=_length(elem),
        private_creator=creator,
    )
    if elem.VR == "SQ":
        items = elem.value or []
        node.value = f"{len(items)} item{'s' if len(items) != 1 else ''}"
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            item_node = TagNode(
                path=item_path,
                tag=f"Item {index + 1}",
                keyword="",
                name="",
                vr="",
                vm=0,
                value=f"{len(item)} attributes",
                is_item=True,
            )
            item_node.children = _dataset_nodes(item, item_path)
            node.children.append(item_node)
    else:
        node.value = _value_text(elem)
    return node


def _length(elem: DataElement) -> int:
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return 0


def _value_text(elem: DataElement) -> str:
    value = elem.value
    if value is None:
        return ""
    if elem.VR in _BINARY_VRS or isinstance(value, (bytes, bytearray)):
        data = bytes(value) if isinstance(value, (bytes, bytearray)) else b""
        if elem.tag == 0x7FE00010 or len(data) > 32:
            return f"<{len(data)} bytes of binary data>"
        return "\\".join(f"{b:02X}" for b in data)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    if elem.keyword.endswith("UID") or elem.VR == "UI":
        try:
            from pydicom.uid import UID

            uid_name = UID(text).name
            if uid_name and uid_name != text:
                text = f"{text} ({uid_name})"
        except Exception:
            pass
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "…"


def search_tags(nodes: list[TagNode], needle: str) -> list[TagNode]:
    """Every node (at any depth) that matches, in document order."""
    return [node for root in nodes for node in root.walk() if not node.is_item and node.matches(needle)]


def filter_tree(nodes: list[TagNode], needle: str) -> list[TagNode]:
    """A pruned copy of the tree keeping matches and the sequences/items leading to them."""
    if not needle:
        return nodes
    kept = []
    for node in nodes:
        children = filter_tree(node.children, needle)
        if (not node.is_item and node.matches(needle)) or children:
            copy = TagNode(**{**node.__dict__, "children": children if children else node.children})
            if not node.matches(needle) or node.is_item:
                copy.children = children
            kept.append(copy)
    return kept


def tags_as_text(nodes: list[TagNode]) -> str:
    """A dcmdump-like listing (for copy to clipboard / saving)."""
    lines: list[str] = []

    def visit(node: TagNode, depth: int) -> None:
        indent = "  " * depth
        if node.is_item:
            lines.append(f"{indent}{node.tag}")
        else:
            creator = f" [{node.private_creator}]" if node.private_creator else ""
            lines.append(f"{indent}{node.tag} {node.vr:<2} {node.name}{creator}: {node.value}")
        for child in node.children:
            visit(child, depth + 1)

    for node in nodes:
        visit(node, 0)
    return "\n".join(lines) + "\n"
