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
from collections.abc import Iterable
from pathlib import PurePosixPath

SETID = stat.S_ISUID | stat.S_ISGID
MAX_HOPS = 40  # symlinks followed while resolving one target, as the kernel's ELOOP limit


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


def _shown(roots: Iterable[PurePosixPath]) -> str:
    return ", ".join(f"/{root}" if root.parts else "/" for root in roots)


def _within(path: PurePosixPath, root: PurePosixPath) -> bool:
    return path == root or root in path.parents


class MemberRules:
    """The rules for one archive, fed its members in order (:meth:`check`), then :meth:`finish`.

    ``roots`` are the backed-up paths as member paths; ``setid_key`` names the config key that
    would allow setuid/setgid files, or is None when the source allows them.
    """

    def __init__(self, roots: tuple[PurePosixPath, ...], setid_key: str | None) -> None:
        self._roots = roots
        self._setid_key = setid_key
        self._kinds: dict[PurePosixPath, str] = {}  # what each name is now: dir, file, symlink
        self._links: dict[PurePosixPath, str] = {}  # symlink name -> target, as extracted

    def check(self, member: tarfile.TarInfo) -> str | None:
        """Why extracting ``member`` after the earlier ones is unsafe, or None."""
        path, reason = _member_path(member.name)
        if path is None:
            return reason
        reason = self._kind_reason(member) or self._place_reason(member.name, path)
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
            self._remember(path, member)
        return reason

    def finish(self) -> str | None:
        """Why a symlink of the whole archive points out of the backed-up paths, or None."""
        for name, target in self._links.items():
            try:
                resolved = self._resolve(name.parent.parts, target, [MAX_HOPS])
            except _UnresolvableError as exc:
                return f"symlink {str(name)!r} -> {target!r} {exc}"
            if not any(_within(resolved, root) for root in self._roots):
                return (
                    f"symlink {str(name)!r} -> {target!r} points outside the backed-up paths "
                    f"({_shown(self._roots)})"
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
        return None

    def _place_reason(self, name: str, path: PurePosixPath) -> str | None:
        """Outside the roots, through a symlink, or before its own directory."""
        inside = [root for root in self._roots if _within(path, root)]
        if not inside:
            return f"{name!r} is outside the backed-up paths ({_shown(self._roots)})"
        root = max(inside, key=lambda r: len(r.parts))  # the innermost asks least
        for parent in reversed(path.parents):
            kind = self._kinds.get(parent)
            if kind == "symlink":
                return f"{name!r} goes through the symlink {str(parent)!r}"
            if _within(parent, root) and kind != "dir":
                return (
                    f"{name!r} comes before its directory {str(parent)!r} (tar would follow "
                    "whatever is at that path on the target)"
                )
        return None

    def _hard_link_reason(self, member: tarfile.TarInfo) -> str | None:
        target, reason = _member_path(member.linkname)
        if target is None:
            return f"hard link {member.name!r}: {reason}"
        if self._kinds.get(target) in ("file", "symlink") and not any(
            self._kinds.get(parent) == "symlink" for parent in target.parents
        ):
            return None
        return (
            f"hard link {member.name!r} -> {member.linkname!r} is not to an earlier file of "
            "the archive"
        )

    def _remember(self, path: PurePosixPath, member: tarfile.TarInfo) -> None:
        self._links.pop(path, None)
        if member.isdir():
            self._kinds[path] = "dir"
        elif member.issym():
            self._kinds[path] = "symlink"
            self._links[path] = member.linkname
        else:
            self._kinds[path] = "file"

    def _resolve(self, base: tuple[str, ...], target: str, budget: list[int]) -> PurePosixPath:
        """Where ``target`` (read from directory ``base``) lands, following the archive's own
        symlinks (at most ``budget[0]`` of them, shared by the whole lookup, as the kernel's
        ELOOP limit); an absolute target is read from the archive's root, the archive being
        of ``/``. Raises _UnresolvableError when it climbs above the root or loops."""
        stack = [] if target.startswith("/") else list(base)
        for part in PurePosixPath(target).parts:
            if part in ("/", "."):
                continue
            if part == "..":
                if not stack:
                    raise _UnresolvableError("climbs out of the restore root")
                stack.pop()
                continue
            stack.append(part)
            link = self._links.get(PurePosixPath(*stack))
            if link is not None:
                budget[0] -= 1
                if budget[0] < 0:
                    raise _UnresolvableError("goes through too many symlinks (a loop?)")
                stack = list(self._resolve(tuple(stack[:-1]), link, budget).parts)
        return PurePosixPath(*stack)


class _UnresolvableError(Exception):
    """A symlink target that leaves the root or loops; the text says which."""


def _member_path(name: str) -> tuple[PurePosixPath | None, str]:
    path = PurePosixPath(name)
    if path.is_absolute():
        return None, f"absolute member path {name!r}"
    if ".." in path.parts:
        return None, f"member path {name!r} climbs out with '..'"
    return path, ""
