"""How jupyter_client starts a warm kernel in a sandbox, so that nbclient drives it as any other.

`ForkProvisioner` is a jupyter_client kernel provisioner: jupyter_client's own `LocalProvisioner`
prepares the connection (ports, key, connection file); instead of running a command, the
provisioner asks the session's launcher, which has the zygote fork a kernel into the sandbox.
The kernel is not the grader's child, so its lifetime is followed through a pidfd.
`SandboxKernelManager` uses that provisioner, and `ReadyClient` knows the kernel is ready as soon
as it answers (jupyter_client's default waits a fixed extra moment on every start).
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import time
from queue import Empty
from typing import Any, Callable

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec as JupyterKernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Any as AnyTrait

from .output import MAX_MESSAGE_BYTES, MAX_QUEUED_MESSAGES

# launcher(connection_info) -> pid: fork a kernel that will listen as `connection_info` says
Launcher = Callable[[dict[str, Any]], int]


class KernelProcess:
    """A kernel process that is not our child: signalled and followed through a pidfd. Once sent SIGKILL it counts
    as ended: it can run no more code, and its exit (the kernel unmapping its memory) need not be waited for."""

    def __init__(self, pid: int):
        self.pid = pid
        self.killed = False
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except (OSError, AttributeError):  # gone already, or a kernel older than Linux 5.3
            self.pidfd = None

    def exited(self) -> bool:
        return self.killed or self._gone()

    def _gone(self) -> bool:
        if self.pidfd is None:
            try:
                os.kill(self.pid, 0)
                return False
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        ready, _, _ = select.select([self.pidfd], [], [], 0)
        return bool(ready)

    def wait(self, timeout: float) -> bool:
        """Whether the process exited (really: not only killed) within `timeout` seconds."""
        if self.pidfd is None:
            return self._gone()
        ready, _, _ = select.select([self.pidfd], [], [], timeout)
        return bool(ready)

    def signal(self, signum: int) -> None:
        if self.exited():
            return
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signum)
            else:
                os.kill(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            return
        if signum == signal.SIGKILL:
            self.killed = True

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class ForkProvisioner(LocalProvisioner):
    """A provisioner whose kernels are forked by the zygote into a sandbox."""

    kernel: KernelProcess | None = None

    @property
    def has_process(self) -> bool:
        return self.kernel is not None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict[str, Any]:
        launcher: Launcher = self.parent.launcher
        self.kernel = KernelProcess(launcher(dict(self.connection_info)))
        self.pid = self.kernel.pid
        return self.connection_info

    async def poll(self) -> int | None:
        if self.kernel is None or self.kernel.exited():
            return -signal.SIGKILL
        return None

    async def wait(self) -> int | None:
        while await self.poll() is None:
            await asyncio.sleep(0.05)
        return -signal.SIGKILL

    async def send_signal(self, signum: int) -> None:
        if self.kernel is not None:
            self.kernel.signal(signum)

    async def kill(self, restart: bool = False) -> None:
        """SIGKILL, then its exit waited for (at most 7 s, as jupyter_client's own kill would): the manager takes
        the kernel for ended at once (`KernelProcess.killed`), so only this wait keeps a GPU kernel's memory from
        being taken before it is freed (a CPU kernel is not killed here: `Session.stop`)."""
        await self.send_signal(signal.SIGKILL)
        if self.kernel is not None:
            self.kernel.wait(7.0)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        if self.kernel is not None:
            self.kernel.close()
        self.kernel = None


class ReadyClient(AsyncKernelClient):
    """Ready when the kernel answers `kernel_info` on the shell channel and its IOPub messages arrive."""

    def start_channels(self, *args: Any, **kwargs: Any) -> None:
        # a message over the limit is refused by ZeroMQ itself (the connection is dropped and made again), so that
        # no single message a kernel sends, however large, is read into the grader's memory
        self.context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.context.setsockopt(zmq.RCVHWM, MAX_QUEUED_MESSAGES)  # what waits unread: at most this many messages
        super().start_channels(*args, **kwargs)

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or 60.0)
        while time.monotonic() < deadline:
            if not await self._async_is_alive():
                raise RuntimeError("the kernel died before it answered")
            msg_id = self.kernel_info()
            if not await self._reply_to(msg_id, min(1.0, deadline - time.monotonic())):
                continue
            if await self._iopub_from(msg_id, 0.05):  # subscribed: nothing the kernel publishes is lost
                return
        raise RuntimeError(f"the kernel did not answer within {timeout:g} s")

    wait_for_ready = _async_wait_for_ready  # the base class binds its own at class creation

    async def _reply_to(self, msg_id: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await self.shell_channel.get_msg(timeout=left)
            except (Empty, asyncio.TimeoutError):
                return False
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False

    async def _iopub_from(self, msg_id: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        found = False
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await self.iopub_channel.get_msg(timeout=left)
            except (Empty, asyncio.TimeoutError):
                return found
            if msg["parent_header"].get("msg_id") == msg_id:
                found = True
                if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                    return True
        return found


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels come from `launcher` through a `ForkProvisioner`."""

    launcher = AnyTrait(allow_none=True)

    def __init__(self, launcher: Launcher, **kwargs: Any):
        super().__init__(**kwargs)
        self.launcher = launcher
        self.client_factory = ReadyClient
        self._kernel_spec = JupyterKernelSpec(argv=["python3", "-m", "ipykernel_launcher", "-f",
                                                    "{connection_file}"],
                                              display_name="torchgrade", language="python",
                                              interrupt_mode="signal", metadata={})

    async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
        """jupyter_client's own start, without the pause of a hundredth of a second that its `in_pending_state`
        decorator adds to every start and shutdown (so that its own tests can see the pending state); `ready`
        resolved as there."""
        await _START_KERNEL(self, **kw)
        if not self.ready.done():
            self.ready.set_result(None)

    async def _async_pre_start_kernel(self, **kw: Any):
        if self.provisioner is None:
            self.provisioner = ForkProvisioner(kernel_id=self.kernel_id or "torchgrade",
                                               kernel_spec=self._kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)


_START_KERNEL = getattr(AsyncKernelManager.start_kernel, "__wrapped__", AsyncKernelManager.start_kernel)
