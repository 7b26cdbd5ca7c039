"""Reading a policy file's YAML within limits: its size, each key once, aliases that stay small.

YAML itself keeps the last of two equal keys without a word, and its aliases let a few hundred
bytes stand for millions of values; both are refused here, before the policy format is checked
(`reviews.policies.spec`). Problems are `Problem`s, as the format's own.
"""

from __future__ import annotations

import yaml

from ..errors import PolicyInvalid, Problem

# A policy file is a few kilobytes; parsing YAML costs seconds per MiB and memory many times
# the file, so a larger file is refused before it is parsed.
MAX_FILE_BYTES = 1024 * 1024
# Values (scalars, lists, mappings) once aliases are expanded: a 1 MiB file without aliases has
# at most about half a million.
MAX_VALUES = 1_000_000
# libyaml's loader when PyYAML was built with it: several times faster, and it bounds nesting.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def size_problem(size: int) -> str | None:
    """Why a file of `size` bytes is refused unread, or None when it may be parsed."""
    if size <= MAX_FILE_BYTES:
        return None
    return (
        f"the file has more than {MAX_FILE_BYTES:,} bytes (1 MiB), the most a policy file may have"
    )


def _duplicate_keys(root: yaml.Node) -> list[Problem]:
    """A problem for each key given twice in one mapping, naming both lines.

    Walks the composed document, each node once: an alias shares its anchor's node, so neither
    a repeated alias nor one that refers to itself costs more than the file's own size.
    """
    problems: list[tuple[int, Problem]] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, (*loc, i)) for i, child in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Mark] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    mark = first.setdefault((key.tag, key.value), key.start_mark)
                    if mark is not key.start_mark:
                        where = _both_places(mark, key.start_mark)
                        problems.append((mark.line, Problem((*loc, key.value), where)))
                    stack.append((value, (*loc, key.value)))
    return [problem for _, problem in sorted(problems, key=lambda item: (item[0], str(item[1])))]


def _both_places(first: yaml.Mark, second: yaml.Mark) -> str:
    if first.line == second.line:
        return (
            f"given twice on line {first.line + 1}, at columns {first.column + 1} and "
            f"{second.column + 1}"
        )
    return f"given twice, on line {first.line + 1} and on line {second.line + 1}"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _expanded_size(root: yaml.Node) -> int | None:
    """How many values the document holds once its aliases are expanded, counted up to just
    past `MAX_VALUES`; None when an alias refers to a node that contains it."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            open_nodes.discard(id(node))
            size[id(node)] = 1 + sum(size[id(child)] for child in _children(node))
            if size[id(node)] > MAX_VALUES:
                return size[id(node)]
        elif id(node) in open_nodes:
            return None
        elif id(node) not in size:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in size)
    return size[id(root)]


def read_yaml(text: str) -> tuple[object, list[Problem]]:
    """The document and the keys it gives twice (YAML itself keeps the last silently).

    Raises `PolicyInvalid` for a file over `MAX_FILE_BYTES` (unparsed), one that is not YAML,
    and one whose aliases would multiply its values past `MAX_VALUES` (a small file must not
    cost what a huge one would) or make a value contain itself.
    """
    if problem := size_problem(len(text.encode("utf-8"))):
        raise PolicyInvalid([Problem((), problem)])
    loader = SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        size = _expanded_size(node)
        if size is None:
            raise PolicyInvalid(
                [Problem((), "an alias (*name) refers to a value that contains it")]
            )
        if size > MAX_VALUES:
            raise PolicyInvalid(
                [Problem((), f"aliases (*name) expand the file to more than {MAX_VALUES:,} values")]
            )
        return loader.construct_document(node), _duplicate_keys(node)
    except yaml.YAMLError as error:
        raise PolicyInvalid([Problem((), f"not valid YAML: {error}")]) from error
    except RecursionError:
        raise PolicyInvalid(
            [Problem((), "not valid YAML: lists or mappings are nested too deeply")]
        ) from None
    finally:
        loader.dispose()
