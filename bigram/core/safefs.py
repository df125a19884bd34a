"""Files bigram reads and writes inside a directory, never through a symbolic link.

A directory the user names (--out, --checkpoint, --data DIR) is opened once,
following a link the user typed; every file inside it is then opened relative
to that descriptor with O_NOFOLLOW. A link planted in a checkpoint or a
prepared directory is refused with one line, never followed, for reading or
writing; a FIFO or device is refused without being opened for I/O. Where the
OS has no O_NOFOLLOW, a name that lstat reports as a link is refused instead.

A temporary directory bigram makes holds a marker file from its first moment
(make_tmp_dir); leftovers are swept only where the marker proves them
bigram's (owned), so a user's file named like one is left exactly as it was.

New files are created with O_EXCL and mode 0666 minus the umask (0644 under
the usual 022), like any other program's output; a file is replaced by writing
a temporary `.bigram-tmp-*` beside it and renaming it over, so readers see the
old file or the new, and a hard link the user made to the old one keeps it.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from pathlib import Path

from bigram.core.errors import BigramError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO for reading must not wait for a writer
DIRECTORY = getattr(os, "O_DIRECTORY", 0)
TMP_PREFIX = ".bigram-tmp-"  # every temporary name bigram makes in a directory starts so
STAGE = ".bigram-save"  # a checkpoint's save being installed (bigram.core.checkpoint)
INSTALL_PREFIX = ".bigram-link-"  # Dir.install's second link, inside bigram's own directory
MARKER = ".bigram-owned"  # the first file in every directory bigram makes for itself
MARK = b"bigram made this directory for a save; it removes it when the save ends\n"
FILE_MODE = 0o666  # minus the umask
_NO_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, getattr(errno, "ENOTSUP", -1), getattr(errno, "EOPNOTSUPP", -1),
             errno.ENOSYS}  # file systems without hard links (FAT, some network mounts)
_AT = {os.open, os.rename, os.mkdir, os.unlink, os.rmdir, os.stat} <= os.supports_dir_fd


_TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r"[0-9]+-[0-9a-f]{12}")


def tmp_name() -> str:
    """A fresh temporary name: the pid says which process made it, the rest makes it unique."""
    return f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"


def make_tmp_dir(d: "Dir") -> str:
    """A fresh temporary directory in d, marked as bigram's before anything else goes in; its name."""
    name = tmp_name()
    d.mkdir(name)
    with d.sub(name) as t:
        t.create(MARKER, MARK, sync=False)
    return name


def owned(d: "Dir", name: str) -> bool:
    """Whether d/name is a directory bigram made (it holds bigram's marker): only then is it bigram's to
    use or remove. A user's file or directory that merely has such a name is never touched."""
    st = d.lstat(name)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return False
    try:
        with d.sub(name) as t:
            return t.read(MARKER) == MARK
    except (BigramError, OSError):
        return False


def empty_leftover(d: "Dir", name: str) -> bool:
    """A directory named exactly as tmp_name() names them, empty but for a part of bigram's marker: a save
    killed between making it and marking it. Removing it loses nothing."""
    if _TMP_NAME.fullmatch(name) is None:
        return False
    st = d.lstat(name)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return False
    try:
        with d.sub(name) as t:
            inside = t.names()
            return not inside or (inside == [MARKER] and MARK.startswith(t.read(MARKER) or b""))
    except (BigramError, OSError):
        return False


def remove_tmp_dir(d: "Dir", name: str, own: tuple[str, ...]) -> None:
    """Delete a temporary directory of bigram's (the caller knows it is): the files it made there
    (`own`, install's second links, the marker), then the directory if that empties it."""
    try:
        with d.sub(name) as t:
            for entry in (*own, *(INSTALL_PREFIX + n for n in own), MARKER):
                st = t.lstat(entry)
                if st is not None and not stat.S_ISDIR(st.st_mode):
                    t.unlink(entry)
    except (BigramError, OSError):
        return
    d.rmdir(name)


def leftover(d: "Dir", name: str) -> bool:
    """A temporary directory a killed process of bigram's left (marked, or killed before its mark)."""
    return name.startswith(TMP_PREFIX) and (owned(d, name) or empty_leftover(d, name))


def sweep(d: "Dir", own: tuple[str, ...]) -> None:
    """Remove the leftovers in d (hold its lock): only what bigram's marker proves its own."""
    for name in d.names():
        if leftover(d, name):
            remove_tmp_dir(d, name, own)


def lock(d: "Dir", busy: str) -> None:
    """An exclusive flock on d for one writer (released when its fd closes, or its process dies);
    `busy` is the one-line error when another process holds it."""
    try:
        import fcntl
    except ImportError:  # no flock here: concurrent writers into one directory are the user's to avoid
        return
    if d.fd is None:
        return
    try:
        fcntl.flock(d.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BigramError(busy) from None
    except OSError:
        pass  # a file system without locks


def busy(path: Path) -> str:
    """The lock's one line: `train` and `data prepare` take the same lock on DIR, so either may hold it."""
    return (f"--out {path} is being written by another bigram command (a train or a data prepare); wait for it "
            "to finish, or choose another --out")


def link_error(path: Path) -> BigramError:
    return BigramError(f"{path} is a symbolic link, and bigram never follows links in its directories; "
                       "replace it with the file itself, or remove it")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def not_regular_error(path: Path, mode: int) -> BigramError:
    return BigramError(f"{path} is {_kind(mode)}, not a regular file; replace it with the file bigram wrote, "
                       "or remove it")


class Dir:
    """A directory opened once; names inside it are opened relative to it and never through a link."""

    def __init__(self, path: Path, fd: int | None):
        self.path = path  # for messages (and the fallback where the OS has no *at calls)
        self.fd = fd

    @classmethod
    def open(cls, path: str | Path) -> "Dir":
        """The directory the user named (a link the user typed is followed: it is their path)."""
        path = Path(path)
        if not _AT:
            return cls(path, None)
        return cls(path, os.open(path, os.O_RDONLY | DIRECTORY | CLOEXEC))

    def sub(self, name: str) -> "Dir":
        """A directory inside this one; a link there is refused, never followed."""
        if not _AT:
            self._refuse_link(name)
            return Dir(self.path / name, None)
        try:
            fd = os.open(name, os.O_RDONLY | DIRECTORY | NOFOLLOW | CLOEXEC, dir_fd=self.fd)
        except OSError as e:
            raise self._why(name, e, "a directory") from None
        return Dir(self.path / name, fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "Dir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- names ---------------------------------------------------------------------------------------
    def _at(self, name: str) -> tuple[str, dict]:
        return (name, {"dir_fd": self.fd}) if self.fd is not None else (str(self.path / name), {})

    def names(self) -> list[str]:
        return sorted(os.listdir(self.fd if self.fd is not None else self.path))

    def lstat(self, name: str) -> os.stat_result | None:
        """lstat of a name inside, or None when there is no such name."""
        p, kw = self._at(name)
        try:
            return os.stat(p, follow_symlinks=False, **kw)
        except FileNotFoundError:
            return None

    def _refuse_link(self, name: str) -> None:
        st = self.lstat(name)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise link_error(self.path / name)

    def _why(self, name: str, e: OSError, want: str = "a regular file") -> Exception:
        """An open refused by O_NOFOLLOW is a link: say so; other errors pass through."""
        if e.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR):
            st = self.lstat(name)
            if st is not None and stat.S_ISLNK(st.st_mode):
                return link_error(self.path / name)
            if st is not None and e.errno == errno.ENOTDIR:
                return BigramError(f"{self.path / name} is not {want}; move it away, or remove it")
        return e

    # -- files ---------------------------------------------------------------------------------------
    def open_fd(self, name: str, flags: int, mode: int = FILE_MODE) -> int:
        """os.open a name inside with O_NOFOLLOW; a link or anything but a regular file is a BigramError."""
        if not NOFOLLOW:
            self._refuse_link(name)
        p, kw = self._at(name)
        try:
            fd = os.open(p, flags | NOFOLLOW | CLOEXEC, mode, **kw)
        except OSError as e:
            raise self._why(name, e) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise not_regular_error(self.path / name, st.st_mode)
        return fd

    def open_read(self, name: str) -> int | None:
        """A read-only fd on a regular file inside, or None when the name does not exist."""
        try:
            return self.open_fd(name, os.O_RDONLY | NONBLOCK)
        except FileNotFoundError:
            return None

    def read(self, name: str) -> bytes | None:
        """The bytes of a regular file inside, or None when the name does not exist."""
        fd = self.open_read(name)
        return None if fd is None else read_fd(fd)

    def create(self, name: str, data: bytes = b"", *, sync: bool = True, keep_open: bool = False) -> int | None:
        """A new file (O_EXCL: nothing already there is ever opened) holding `data`, fsynced."""
        fd = self.open_fd(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        try:
            write_all(fd, data)
            if sync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            self.unlink(name)
            raise
        if keep_open:
            return fd
        os.close(fd)
        return None

    def replace(self, name: str, data: bytes) -> None:
        """Replace `name` atomically: a new file renamed over it, then the directory fsynced."""
        tmp = tmp_name()
        self.create(tmp, data)
        self._rename_tmp(tmp, name)
        self.sync()

    def install(self, src: "Dir", name: str) -> None:
        """Make `name` here the file src/name: a second hard link made inside src (a directory of
        bigram's own; a copy where links fail) and renamed over `name` here. A kill in between leaves
        the extra link inside src, removed with it, never a stray name here."""
        tmp = INSTALL_PREFIX + name
        src.unlink(tmp)  # a killed install's
        try:
            if src.fd is None:
                os.link(src.path / name, src.path / tmp, follow_symlinks=False)
            else:
                os.link(name, tmp, src_dir_fd=src.fd, dst_dir_fd=src.fd, follow_symlinks=False)
        except OSError as e:
            if e.errno not in _NO_LINKS:
                raise
            src.create(tmp, src.read(name) or b"")
        try:
            if src.fd is None or self.fd is None:
                os.replace(src.path / tmp, self.path / name)
            else:
                os.replace(tmp, name, src_dir_fd=src.fd, dst_dir_fd=self.fd)
        except BaseException:
            src.unlink(tmp)
            raise

    def _rename_tmp(self, tmp: str, name: str) -> None:
        try:
            self.rename(tmp, name)
        except BaseException:
            self.unlink(tmp)
            raise

    # -- directory operations ------------------------------------------------------------------------
    def rename(self, src: str, dst: str) -> None:
        if self.fd is None:
            os.replace(self.path / src, self.path / dst)
        else:
            os.replace(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name: str) -> bool:
        """Remove a name (a link itself, never its target); False when it was not there."""
        return self._try(os.unlink, name, FileNotFoundError)

    def mkdir(self, name: str) -> None:
        p, kw = self._at(name)
        os.mkdir(p, 0o777, **kw)

    def rmdir(self, name: str) -> bool:
        """Remove an empty directory inside; False when it is missing or not empty."""
        return self._try(os.rmdir, name, OSError)

    def _try(self, fn, name: str, errors) -> bool:
        p, kw = self._at(name)
        try:
            fn(p, **kw)
        except errors:
            return False
        return True

    def sync(self) -> None:
        """Make renames inside durable (POSIX: fsync the directory)."""
        if self.fd is not None:
            try:
                os.fsync(self.fd)
            except OSError:
                pass


def read_fd(fd: int) -> bytes:
    """All of a file from its start; closes fd."""
    with os.fdopen(fd, "rb") as f:
        f.seek(0)
        return f.read()


def pread(fd: int, n: int, offset: int) -> bytes:
    """n bytes at offset (the fd's position is left alone where the OS has pread)."""
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, n)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def open_nofollow(path: str | Path, flags: int = os.O_RDONLY) -> int:
    """os.open `path` without following a link in its last component (the name a directory holds;
    the directories above are the path the user typed). Usable as open()'s opener."""
    path = Path(path)
    d = Dir(path.parent, None)
    if not NOFOLLOW:
        d._refuse_link(path.name)
    try:
        fd = os.open(path, flags | NONBLOCK | NOFOLLOW | CLOEXEC, FILE_MODE)
    except OSError as e:
        raise d._why(path.name, e) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise not_regular_error(path, st.st_mode)
    return fd


def read_nofollow(path: str | Path) -> bytes:
    """The bytes of a regular file, refusing a link (see open_nofollow)."""
    return read_fd(open_nofollow(path))


def holds_a_file(path: str | Path) -> bool:
    """Whether a file of some bytes is at `path` (a name about to be replaced); a link, a directory or a FIFO
    there is the user's, a BigramError."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise link_error(Path(path))
    if not stat.S_ISREG(st.st_mode):
        raise not_regular_error(Path(path), st.st_mode)
    return st.st_size > 0


def write_file_atomic(path: str | Path, data: bytes) -> None:
    """Write `path` so that readers see the old file or the new, never half; never through a link."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with Dir.open(path.parent) as d:
        d.replace(path.name, data)
