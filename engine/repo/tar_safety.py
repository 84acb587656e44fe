"""Which members of a files archive may be extracted: the gate between a hostile tar and a target.

A files backup is the tar stream a host produced, hashed as it arrived, so a compromised host
can hand over any archive with a matching sha256. GNU tar on the restoring host strips a
leading ``/``, skips ``..`` and defers symlinks that point away, but it creates device nodes
and setuid files, links to anywhere, and follows a symlink already on the target when a
member's directory is not in the archive. So ``backup verify`` and the restore validator read
every member here, in archive order, before anything is written; the restore then extracts
with options that keep tar's own defences (``engine.sources.files``).

An archive may hold only what a files backup makes: directories, regular files, symlinks and
hard links, inside the paths it was made of, each directory entry before what it holds; no
member through a symlink, no link out of those paths, no setuid/setgid file unless the source
allows it (``allow_setid``).
"""

from __future__ import annotations

import stat
import tarfile
from pathlib import PurePosixPath

SETID = stat.S_ISUID | stat.S_ISGID
MAX_HOPS = 40  # symlinks followed while resolving one target, as the kernel's ELOOP limit
MAX_NAME = 4096  # Linux's PATH_MAX: no restore can write a longer name, and checks stay linear

Parts = tuple[str, ...]  # a member path, split: () is the archive's root


def archive_name(path: str) -> str:
    """The member name a backup gives an absolute path (tar runs with ``-C /``)."""
    return str(PurePosixPath(path).relative_to("/"))


def backed_up_roots(paths: object) -> tuple[PurePosixPath, ...]:
    """The member paths an archive was made of, from its manifest's ``paths``; ValueError if
    they are not a list of absolute paths without ``..``."""
    if not isinstance(paths, list) or not paths:
        raise ValueError("the manifest does not say which paths this archive holds")
    roots = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"the manifest's path {path!r} is not an absolute path")
        roots.append(PurePosixPath(archive_name(path)))
    return tuple(roots)


class _Node:
    """One name in the archive's tree: what the last member of that name made, if any."""

    __slots__ = ("children", "kind")

    def __init__(self) -> None:
        self.kind: str | None = None  # dir, file or symlink; None: only a parent of members
        self.children: dict[str, _Node] = {}


class MemberRules:
    """The rules for one archive, fed its members in order (:meth:`check`), then :meth:`finish`.

    ``roots`` are the backed-up paths as member paths; ``setid_key`` names the config key that
    would allow setuid/setgid files, or is None when the source allows them. Each member costs
    time in proportion to its name's length, whatever the archive holds.
    """

    def __init__(self, roots: tuple[PurePosixPath, ...], setid_key: str | None) -> None:
        self._roots = tuple(root.parts for root in roots)
        self._setid_key = setid_key
        self._tree = _Node()
        self._links: dict[Parts, str] = {}  # symlink -> target, for those that stay symlinks

    def check(self, member: tarfile.TarInfo) -> str | None:
        """Why extracting ``member`` after the earlier ones is unsafe, or None."""
        parts, bad_name = _member_parts(member.name)
        if parts is None:
            return bad_name
        reason = self._kind_reason(member) or self._place_reason(member.name, parts)
        if reason is None and member.islnk():
            reason = self._hard_link_reason(member)
        setid = member.mode & SETID and (member.isreg() or member.islnk())
        if reason is None and setid and self._setid_key:
            which = "setuid" if member.mode & stat.S_ISUID else "setgid"
            reason = (
                f"{which} file {member.name!r} (mode {member.mode:o}); if this host may restore "
                f"such files, set {self._setid_key} = true"
            )
        if reason is None:
            self._remember(parts, member)
        return reason

    def finish(self) -> str | None:
        """Why a symlink of the whole archive points out of the backed-up paths, or None."""
        for parts, target in self._links.items():
            name = "/".join(parts)
            try:
                resolved = self._resolve(parts[:-1], target, [MAX_HOPS])
            except _UnresolvableError as exc:
                return f"symlink {name!r} -> {target!r} {exc}"
            if self._innermost_root(resolved) is None:
                return (
                    f"symlink {name!r} -> {target!r} points outside the backed-up paths "
                    f"({self._shown_roots()})"
                )
        return None

    def _kind_reason(self, member: tarfile.TarInfo) -> str | None:
        if member.ischr() or member.isblk():
            kind = "character" if member.ischr() else "block"
            return f"{kind} device {member.name!r} ({member.devmajor}, {member.devminor})"
        if member.isfifo():
            return f"FIFO {member.name!r}"
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            return f"{member.name!r} is of an unsupported type {member.type!r}"
        if member.issym() and not member.linkname:
            return f"symlink {member.name!r} has an empty target"
        if len(member.linkname) > MAX_NAME:
            return f"link {member.name!r} has a target longer than {MAX_NAME} characters"
        return None

    def _place_reason(self, name: str, parts: Parts) -> str | None:
        """Outside the roots, through a symlink, or before its own directory."""
        root = self._innermost_root(parts)  # the innermost asks least
        if root is None:
            return f"{name!r} is outside the backed-up paths ({self._shown_roots()})"
        node: _Node | None = self._tree
        for depth in range(1, len(parts)):
            node = node.children.get(parts[depth - 1]) if node else None
            kind = node.kind if node else None
            if kind == "symlink":
                return f"{name!r} goes through the symlink {'/'.join(parts[:depth])!r}"
            if depth >= root and kind != "dir":
                return (
                    f"{name!r} comes before its directory {'/'.join(parts[:depth])!r} (tar "
                    "would follow whatever is at that path on the target)"
                )
        return None

    def _hard_link_reason(self, member: tarfile.TarInfo) -> str | None:
        parts, reason = _member_parts(member.linkname)
        if parts is None:
            return f"hard link {member.name!r}: {reason}"
        node: _Node | None = self._tree
        for part in parts:
            if node is None or node.kind == "symlink":
                break
            node = node.children.get(part)
        else:
            if node is not None and node.kind in ("file", "symlink"):
                return None
        return (
            f"hard link {member.name!r} -> {member.linkname!r} is not to an earlier file of "
            "the archive"
        )

    def _remember(self, parts: Parts, member: tarfile.TarInfo) -> None:
        node = self._tree
        for part in parts:
            node = node.children.setdefault(part, _Node())
        self._links.pop(parts, None)
        if member.isdir():
            node.kind = "dir"
        elif member.issym():
            node.kind = "symlink"
            self._links[parts] = member.linkname
        else:
            node.kind = "file"

    def _innermost_root(self, parts: Parts) -> int | None:
        """How many parts the innermost backed-up path holding ``parts`` has; None: none."""
        depths = [len(root) for root in self._roots if parts[: len(root)] == root]
        return max(depths) if depths else None

    def _shown_roots(self) -> str:
        return ", ".join("/" + "/".join(root) for root in self._roots)

    def _resolve(self, base: Parts, target: str, budget: list[int]) -> Parts:
        """Where ``target`` (read from directory ``base``) lands, following the archive's own
        symlinks (at most ``budget[0]`` of them, shared by the whole lookup, as the kernel's
        ELOOP limit); an absolute target is read from the archive's root, the archive being
        of ``/``. Raises _UnresolvableError when it climbs above the root or loops."""
        stack = [] if target.startswith("/") else list(base)
        nodes = self._walk(stack)  # nodes[i]: the node of stack[: i + 1], or None
        for part in PurePosixPath(target).parts:
            if part in ("/", "."):
                continue
            if part == "..":
                if not stack:
                    raise _UnresolvableError("climbs out of the restore root")
                stack.pop()
                nodes.pop()
                continue
            parent = nodes[-1] if nodes else self._tree
            node = parent.children.get(part) if parent else None
            stack.append(part)
            nodes.append(node)
            if node is not None and node.kind == "symlink":
                budget[0] -= 1
                if budget[0] < 0:
                    raise _UnresolvableError("goes through too many symlinks (a loop?)")
                stack = list(self._resolve(tuple(stack[:-1]), self._links[tuple(stack)], budget))
                nodes = self._walk(stack)
        return tuple(stack)

    def _walk(self, parts: list[str]) -> list[_Node | None]:
        nodes: list[_Node | None] = []
        node: _Node | None = self._tree
        for part in parts:
            node = node.children.get(part) if node else None
            nodes.append(node)
        return nodes


class _UnresolvableError(Exception):
    """A symlink target that leaves the root or loops; the text says which."""


def _member_parts(name: str) -> tuple[Parts | None, str]:
    if len(name) > MAX_NAME:
        return None, f"member name {name[:60]!r}... is longer than {MAX_NAME} characters"
    path = PurePosixPath(name)
    if path.is_absolute():
        return None, f"absolute member path {name!r}"
    if ".." in path.parts:
        return None, f"member path {name!r} climbs out with '..'"
    return path.parts, ""
