"""Warm starts: `dcsm-cache` commands forked from one process that has already imported torch and the model stack.

    python -m dcsm_cache.warm "$SOCKET" "$SNAKEMAKE_PID"   # serve until that process is gone (the Snakefile's onstart)
    DCSM_CACHE_WARM="$SOCKET" dcsm-cache eval ...          # runs in a child the server forks

A workflow job that builds a model spends ~2.5 s importing torch, torchvision, timm and open_clip, and
one that reads a store ~1.5 s on torch, before work that at small sizes takes a fraction of that. With
DCSM_CACHE_WARM naming a live server, the command line sends its arguments, environment, working folder
and standard streams (the descriptors themselves, over a Unix socket) to the server, which forks a child
that runs the same `main()`; the command waits, passes SIGINT, SIGTERM, SIGHUP and SIGQUIT on to the
child, and exits as the child did (killed by the same signal if it was). If the command itself is killed
(SIGKILL: the OOM killer, a killed process group), the server kills the child at once, as if it had been
the job's own process.

A child is what a fresh process would be: the environment is the command's, the CPU pin (isa.py) the
one its command line asks for, torch's and the BLAS's thread counts the job's (OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS, as a fresh process reads them), Python's and numpy's global random state fresh.
The server never runs a torch operation, so no thread pool is forked; on a machine where CUDA could be
used (a CUDA build of torch and an NVIDIA device) it does not serve at all, and every job starts fresh.
It refuses a request, and the command runs in a fresh process as before, when the Python, the package
or the environment differs from its own other than in what each Snakemake job sets for itself (`PER_JOB`):
every library has read its settings from the server's environment at import. It stops on SIGTERM or
when the process that started it is gone, once its children have ended.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import socket
import sys

from .cli.warm import ENV_VAR, MAX_MESSAGE, python_identity, signal_child  # the command's side
from .isa import ENV_VAR as ISA_VAR
from .isa import isa_environment, pin_cpu_isa

#: the thread counts Snakemake sets per job: the server imports with none set, its children apply the job's
THREADS = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
#: what may differ from the server's environment: the threads, the job's tmpdir and shell, the server's address
PER_JOB = frozenset(
    {
        *THREADS,
        "TMPDIR",
        "TMP",
        "TEMP",
        "TEMPDIR",
        "_",
        "SHLVL",
        "PWD",
        "OLDPWD",
        "PS1",  # a non-interactive bash unsets its prompts (a venv's activate exports PS1)
        "PS2",
        "PYENV_DIR",  # pyenv's launchers set it to the folder they ran in
        ENV_VAR,
    }
)

__all__ = ["ENV_VAR", "PER_JOB", "THREADS", "refusal", "serve"]


def serve(path: str, parent: int | None = None) -> None:
    """Import the model stack, then fork a child per request on the socket at `path` until SIGTERM, or until
    the process `parent` (the one that started this one, by default) is gone."""
    parent = parent or os.getppid()
    for name in THREADS:  # every library starts with its defaults; a child sets the job's counts
        os.environ.pop(name, None)
    environment = dict(os.environ)
    isa = os.environ.get(ISA_VAR, "native")
    pin_cpu_isa(isa)  # before torch is imported, as the CLI does
    _preload()
    if _cuda_possible():
        print(
            "dcsm-cache warm: not serving: torch is built for CUDA and this machine has an NVIDIA device, "
            "and a process forked after CUDA is touched cannot use it: every job starts fresh",
            flush=True,
        )
        _unlink(path)
        return
    gc.freeze()  # the imported objects into the permanent generation: children's collections leave their pages shared

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    print(f"dcsm-cache warm: serving on {path} (pid {os.getpid()}, cpu_isa {isa})", flush=True)
    while True:
        for key, _ in selector.select(timeout=0.05):
            if key.fileobj is listener:
                _accept(listener, selector, children, environment, isa)
            else:  # the command's end of the connection: closed before its child ended means it was killed
                pid = key.data
                if pid in children and not _peek(key.fileobj):
                    signal_child(pid, signal.SIGKILL)
        _reap(selector, children)
        if (stopping or os.getppid() != parent) and listener.fileno() >= 0:
            selector.unregister(listener)
            listener.close()
            _unlink(path)
        if listener.fileno() < 0 and not children:
            return


def _cuda_possible() -> bool:
    """Whether a job here could use CUDA (then it starts fresh: the server does not bet on no library having
    initialised CUDA before it forks)."""
    import glob

    import torch

    return torch.version.cuda is not None and bool(glob.glob("/dev/nvidia[0-9]*"))


def _preload() -> None:
    """What the commands import: torch, numpy, zarr, open_clip (behind its guard), the pipeline's stages."""
    import dcsm_cache.cli  # noqa: F401
    import dcsm_cache.pipeline.extract  # noqa: F401
    import dcsm_cache.pipeline.tasks  # noqa: F401
    import dcsm_cache.pipeline.train  # noqa: F401
    import dcsm_cache.pipeline.world  # noqa: F401


def _accept(listener, selector, children, environment: dict, isa: str) -> None:
    conn, _ = listener.accept()
    conn.settimeout(5)
    try:
        message, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 3)
        request = json.loads(message)
    except (OSError, ValueError):
        conn.close()
        return
    why = refusal(request, environment, isa) if len(fds) == 3 else "three standard streams expected"
    if why:
        print(f"dcsm-cache warm: refused {request.get('argv', [])[1:3]}: {why}", flush=True)
        for fd in fds:
            os.close(fd)
        conn.sendall(json.dumps({"refused": why}).encode())
        conn.close()
        return
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        selector.close()
        _child(request, fds, isa, [listener, conn, *children.values()])
    print(f"dcsm-cache warm: pid {pid}: {' '.join(request['argv'][1:3])}", flush=True)
    for fd in fds:
        os.close(fd)
    conn.sendall(json.dumps({"pid": pid}).encode())
    conn.setblocking(False)
    children[pid] = conn
    selector.register(conn, selectors.EVENT_READ, data=pid)


def refusal(request: dict, environment: dict, isa: str) -> str | None:
    """Why a child of this server would not be what a fresh process running `request` is; None if it would."""
    if request.get("python") != python_identity():
        return f"another Python or package ({request.get('python')})"
    env = request.get("env", {})
    differ = sorted(k for k in set(env) | set(environment) if env.get(k) != environment.get(k) and k not in PER_JOB)
    if differ:
        return f"its environment differs in {', '.join(differ[:5])}"
    asked = _cpu_isa(request.get("argv", []), env)
    if asked != isa:
        return f"cpu_isa {asked}, the server's is {isa}"
    return None


def _cpu_isa(argv: list[str], env: dict) -> str:
    """The CPU pin `dcsm-cache ARGV` asks for: --cpu-isa before the command's name, else the environment's."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "--cpu-isa":
            return next(args, "")
        if arg.startswith("--cpu-isa="):
            return arg.partition("=")[2]
        if not arg.startswith("-"):
            break
    return env.get(ISA_VAR, "native")


def _child(request: dict, fds: list[int], isa: str, inherited: list[socket.socket]) -> None:
    """In the forked child: become the command's process, run its `main()`, exit as a fresh process would."""
    code = 1
    try:
        for sock in inherited:
            sock.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        code = _run(request["argv"], isa)
    except SystemExit as done:
        code = _exit_code(done)
    except BaseException:  # noqa: BLE001  (as a fresh interpreter: the traceback on stderr, exit 1)
        sys.excepthook(*sys.exc_info())
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _run(argv: list[str], isa: str) -> int:
    import atexit
    import random
    import tempfile
    import threading

    import numpy as np
    import torch

    from .cli import main

    os.environ.update(isa_environment(isa))  # what the CLI sets before it imports torch (it checks they agree)
    tempfile.tempdir = None  # read TMPDIR again: the job's
    random.seed()
    np.random.seed()
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "")
    if blas.isdigit() and int(blas) > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(blas), user_api="blas")
    sys.argv = list(argv)
    try:
        main(args=list(argv[1:]), prog_name="dcsm-cache")
        code = 0
    except SystemExit as done:
        code = _exit_code(done)
    threading._shutdown()  # what the interpreter does at exit: join the threads the command left running,
    atexit._run_exitfuncs()  # then its exit handlers (os._exit follows: the server's objects are not torn down)
    return code


def _exit_code(done: SystemExit) -> int:
    if done.code is None:
        return 0
    if isinstance(done.code, int):
        return done.code
    print(done.code, file=sys.stderr)
    return 1


def _peek(conn: socket.socket) -> bool:
    """Whether the command's end of `conn` is still open."""
    try:
        return conn.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _reap(selector, children: dict) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is None:
            continue
        end = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": os.waitstatus_to_exitcode(status)}
        try:
            conn.setblocking(True)
            conn.sendall(json.dumps(end).encode())
        except OSError:
            pass
        selector.unregister(conn)
        conn.close()


def _unlink(path: str) -> None:
    """The socket, and the folder workflow/warm.py made for it (dcsm-warm-*) once nothing else is in it."""
    folder = os.path.dirname(path)
    for remove, what in (
        (os.unlink, path),
        (os.rmdir, folder if os.path.basename(folder).startswith("dcsm-warm-") else ""),
    ):
        try:
            remove(what)
        except OSError:
            pass


if __name__ == "__main__":  # python -m dcsm_cache.warm SOCKET [PARENT_PID]
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
