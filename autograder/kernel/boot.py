"""What a forked kernel does before it serves: enter its sandbox, give up every privilege, start.

Runs in the zygote's children. The intermediate child joins the cgroups and the namespaces of a
sandbox that bubblewrap set up (user, mount, network, IPC, UTS, cgroup, then PID for its own
child); the kernel is that child: it closes every inherited descriptor but the integrity pipe,
sets its working directory, environment and resource limits, becomes the sandbox's own unprivileged
user where it has one (the `user` sandbox), drops all capabilities (bounding,
ambient, effective, permitted) under `no_new_privs`, refuses the system calls a kernel has no use
for (seccomp: ptrace, setns, unshare, mount...), seeds the random generators, installs the
probe server and the audit hook, and becomes an IPython kernel that nbclient drives.

Nothing here runs student code; everything here runs before student code.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

try:  # libseccomp, through its ctypes binding: a system call filter on top of the namespaces
    import pyseccomp
except (ImportError, OSError):  # no libseccomp on this host: the namespaces and no capabilities still hold
    pyseccomp = None

CLONE = {"user": 0x10000000, "mnt": 0x00020000, "net": 0x40000000, "ipc": 0x08000000, "uts": 0x04000000,
         "cgroup": 0x02000000, "pid": 0x20000000}
NS_GET_PARENT = 0xB702
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 24, 47, 4
CAPABILITY_VERSION_3 = 0x20080522
INTEGRITY_FD, PROBE_FD = 3, 4
# System calls a kernel has no use for, refused with EPERM for it and every process it starts.
DENIED_SYSCALLS = ("ptrace", "process_vm_readv", "process_vm_writev", "setns", "unshare", "mount", "umount2",
                   "pivot_root", "chroot", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
                   "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "userfaultfd",
                   "open_by_handle_at", "name_to_handle_at", "quotactl", "swapon", "swapoff", "reboot", "acct",
                   "syslog", "fsopen", "fsmount", "fsconfig", "move_mount", "open_tree", "mount_setattr")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def join_namespaces(pid: int, kinds: tuple[str, ...] = ("mnt", "net", "ipc", "uts", "cgroup", "pid")) -> None:
    """Enter the namespaces of sandbox process `pid` (the sandbox's init, `isolation.PLACEHOLDER`).

    bubblewrap creates the namespaces in a first user namespace and runs the sandbox in a second,
    nested one (`--disable-userns`). The other namespaces belong to the first, so it is joined
    first, then the mount, network, IPC, UTS, cgroup and PID namespaces (`kinds`), then the second user
    namespace. The PID namespace applies to children: the kernel is forked after this.
    """
    fds = {kind: os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC) for kind in ("user", *kinds)}
    try:
        outer = fcntl.ioctl(fds["user"], NS_GET_PARENT)
        try:
            _check(_libc.setns(outer, CLONE["user"]), "setns(user)")
        finally:
            os.close(outer)
        for kind in kinds:
            _check(_libc.setns(fds[kind], CLONE[kind]), f"setns({kind})")
        _check(_libc.setns(fds["user"], CLONE["user"]), "setns(user, nested)")
    finally:
        for fd in fds.values():
            os.close(fd)


def join_cgroups(procs_files: list[str]) -> None:
    for path in procs_files:
        with open(path, "w") as f:
            f.write(str(os.getpid()))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges() -> None:
    """No capability in any set, and no way to gain one back (setuid binaries, file capabilities)."""
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: past the last
            break
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def become_user(uid: int) -> None:
    """Run as `uid` (group `uid`, no supplementary groups) from now on, with no way back to root: the kernel of
    the `user` sandbox (`isolation_user`). The bounding set is emptied first, while root may still do so."""
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: past the last
            break
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != uid or os.getgroups():
        raise OSError(f"the kernel did not become uid {uid}")


def deny_syscalls() -> bool:
    """Install the seccomp filter (after `no_new_privs`); False where libseccomp is missing."""
    if pyseccomp is None:
        return False
    rules = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            rules.add_rule(pyseccomp.ERRNO(1), name)  # EPERM
        except Exception:  # a system call this architecture does not have
            continue
    rules.load()
    return True


def set_limits(limits: dict[str, int]) -> None:
    names = {"core": resource.RLIMIT_CORE, "fsize": resource.RLIMIT_FSIZE, "nproc": resource.RLIMIT_NPROC,
             "nofile": resource.RLIMIT_NOFILE}
    for name, value in limits.items():
        resource.setrlimit(names[name], (value, value))


def isolate_descriptors(integrity_fd: int, probe_fd: int) -> None:
    """Keep only the integrity pipe (fd 3), the probe socket (fd 4), and /dev/null as standard streams."""
    high = max(integrity_fd, probe_fd, PROBE_FD) + 1
    integrity_fd, probe_fd = os.dup2(integrity_fd, high), os.dup2(probe_fd, high + 1)  # out of the way first
    os.dup2(integrity_fd, INTEGRITY_FD)
    os.dup2(probe_fd, PROBE_FD)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(PROBE_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def kernel_main(request: dict[str, Any], fds: list[int], probe: dict[str, Any], join: bool = False) -> None:
    """The kernel process: never returns. With `join`, it enters its sandbox's cgroups and namespaces itself (all
    but the PID namespace, which it was forked into)."""
    try:
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        isolate_descriptors(*fds)
        if join:
            join_cgroups(request.get("cgroups", []))
            if request.get("join"):
                join_namespaces(int(request["join"]), ("mnt", "net", "ipc", "uts", "cgroup"))
        os.umask(0o022)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        for folder in request.get("populate") or ():
            shutil.copytree(folder, request["cwd"], dirs_exist_ok=True, symlinks=True)
        set_limits(request.get("rlimits", {}))
        if request.get("user") is not None:
            become_user(int(request["user"]))
        drop_privileges()
        if request.get("seccomp") and not deny_syscalls():
            os.write(INTEGRITY_FD, b"N no system call filter: libseccomp is not installed\n")
        start_kernel(request, probe)
    except BaseException as exc:  # the grader sees a kernel that never answers; say why on the pipe
        try:
            os.write(INTEGRITY_FD, f"X kernel start failed: {type(exc).__name__}: {exc}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(1)


def start_kernel(request: dict[str, Any], probe: dict[str, Any]) -> None:
    import numpy
    import torch
    from ipykernel.kernelapp import IPKernelApp
    from traitlets.config import Config

    seed = int(request["seed"])
    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(int(request["threads"]))
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd)]
    config = Config()  # as configuration, not command-line options: traitlets parses those for a quarter second
    config.IPKernelApp.connection_file = request["connection_file"]
    config.IPKernelApp.quiet = True
    config.HistoryManager.enabled = False
    config.Completer.use_jedi = False
    # no threads watching the standard streams' file descriptors (output written below Python, which grading has no
    # use for): a thread a notebook could hand work to, by replacing the stream's `write`, where the guard's key is not
    config.IPKernelApp.capture_fd_output = False
    app = IPKernelApp.instance(config=config)
    app.parse_command_line = lambda argv=None: None  # no arguments: traitlets would build an argparse parser for none
    app.initialize([])
    hash_cells_in_c(app.shell)
    probe["serve"](app.kernel, INTEGRITY_FD, PROBE_FD, probe["origin"])
    probe["write_frame"](PROBE_FD, {"ready": True}, b"")  # its sockets are bound: the grader may connect
    app.start()


def hash_cells_in_c(shell: Any) -> None:
    """ipykernel names each cell's code after a hash of its source (`/tmp/ipykernel_<pid>/<hash>.py`, for its
    debugger, which these kernels do not have) written in pure Python: 25 ms for the self-check's packed cell (120
    kB), each time it runs. The same kind of name from hashlib's hash, which costs nothing: tracebacks, `Cell In[n]`
    and the grader's own reading of them (`kernel_side/origin.py`, `guard.format_error`) are unchanged."""
    compiler = getattr(shell, "compile", None)
    if type(compiler).__name__ != "XCachingCompiler":  # another ipykernel: left as it is
        return
    from ipykernel.compiler import get_tmp_directory

    folder = get_tmp_directory()

    def get_code_name(raw_code: str, code: str, number: int) -> str:
        digest = hashlib.blake2b(raw_code.encode("utf-8", "surrogatepass"), digest_size=4).digest()
        return f"{folder}{os.sep}{int.from_bytes(digest, 'little')}.py"

    compiler.get_code_name = get_code_name


def read_json(fd: int) -> dict[str, Any]:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return json.loads(b"".join(chunks) or b"{}")


def spawn(request: dict[str, Any], fds: list[int], probe: dict[str, Any]) -> int:
    """Fork a kernel into the request's sandbox, handing it `fds` (integrity pipe, probe socket);
    returns its pid (as the host sees it).

    One fork: the zygote makes its next child start in the sandbox's PID namespace, forks the kernel, and
    takes its own back; the kernel joins the rest itself. A zygote that may not (not root: no privilege over
    the sandbox's user namespace) forks through an intermediate child that joins first (`spawn_through_child`).
    A fork copies the zygote's page tables and its exit unmaps them: at its size, a second one cost a kernel
    about a tenth of its start."""
    own = enter_pid_namespace(int(request["join"])) if request.get("join") else None
    if request.get("join") and own is None:
        return spawn_through_child(request, fds, probe)
    try:
        kernel = os.fork()
        if kernel == 0:
            kernel_main(request, fds, probe, join=True)
    finally:
        if own is not None:
            leave_pid_namespace(own)
    return kernel


def enter_pid_namespace(pid: int) -> int | None:
    """This process's next children start in process `pid`'s PID namespace; returns a descriptor of its own PID
    namespace, to go back to (`leave_pid_namespace`), or None where it may not (nothing changed)."""
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(own)
        return None
    try:
        if _libc.setns(target, CLONE["pid"]) != 0:
            os.close(own)
            return None
    finally:
        os.close(target)
    return own


def leave_pid_namespace(own: int) -> None:
    """Children start in this process's own PID namespace again. A zygote that cannot go back ends at once: its
    next kernel would start in another submission's sandbox."""
    try:
        _check(_libc.setns(own, CLONE["pid"]), "setns(pid, own)")
    except OSError:
        os._exit(70)
    finally:
        os.close(own)


def spawn_through_child(request: dict[str, Any], fds: list[int], probe: dict[str, Any]) -> int:
    """`spawn` by way of an intermediate child that joins the sandbox (cgroups, then namespaces) and forks the
    kernel; returns the kernel's pid."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the intermediate child: joins, forks the kernel, reports its pid, exits
        reply: dict[str, Any]
        try:
            os.close(reader)
            join_cgroups(request.get("cgroups", []))
            if request.get("join"):
                join_namespaces(int(request["join"]))
            kernel = os.fork()
            if kernel == 0:
                os.close(writer)
                kernel_main(request, fds, probe)
            reply = {"pid": kernel}
        except BaseException as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            os.write(writer, json.dumps(reply).encode())
        finally:
            os._exit(0)
    os.close(writer)
    try:
        reply = read_json(reader)
    finally:
        os.close(reader)
        try:
            os.waitpid(child, 0)
        except ChildProcessError:  # reaped already by the zygote's SIGCHLD handler
            pass
    if "pid" not in reply:
        raise OSError(reply.get("error", "the kernel could not be forked"))
    return int(reply["pid"])


def library_paths() -> list[Path]:
    """Directories the kernel must see read-only: the interpreter, its environment, torchgrade itself."""
    import site
    import sysconfig

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(sysconfig.get_paths().values())
    paths.update(site.getsitepackages())
    paths.add(str(Path(__file__).resolve().parent.parent))  # the autograder package (no solutions in it)
    paths.update(p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p)  # CUDA, MKL...
    for entry in sys.path:
        if entry and entry != "." and os.path.isdir(entry) and ("site-packages" in entry or "dist-packages" in entry
                                                              or entry.startswith(sys.base_prefix)):
            paths.add(entry)
    resolved = {Path(os.path.realpath(p)) for p in paths if p and os.path.exists(p)}
    return sorted(resolved)
