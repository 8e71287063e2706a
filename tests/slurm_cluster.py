"""A real one-node SLURM cluster on this machine, in a fresh state folder, for tests/test_slurm.py.

    with SlurmCluster(tmp_path / "slurm") as cluster:        # munged, slurmctld and slurmd started
        subprocess.run(["sbatch", "--wrap", "hostname"], env=cluster.env)
    # stopped by their PIDs, the state folder left for reading

Needs root (slurmd runs jobs as the submitting user; munged is started with --force), Debian's
`slurm-wlm` and `munge` (`.ci/run` installs them) and no SLURM of the machine's own: the cluster's
slurm.conf is written in the state folder and linked from /etc/slurm/slurm.conf, because the
executor plugin's job step clears SLURM_CONF before its inner `srun`, which then reads the default
path (the link is removed on stop). munged gets a key and socket of its own in the state folder.
Accounting is off, so `sacct` fails: Snakemake must use `--slurm-status-command squeue` and keep
finished jobs visible to squeue (MinJobAge 300 s). `why_not()` says why a cluster cannot start here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "srun", "sinfo")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
PARTITION = "debug"


def why_not() -> str | None:
    """None if a cluster can start here, else the reason (for pytest.skip)."""
    missing = [b for b in (*DAEMONS, *CLIENTS) if shutil.which(b) is None]
    if missing:
        return f"SLURM binaries not on PATH: {', '.join(missing)} (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting slurmctld, slurmd and munged needs root"
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.is_symlink():
        return f"this machine has a SLURM of its own ({SYSTEM_CONF}); the test starts one only where there is none"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line(cpus: int | None, memory_mb: int) -> str:
    """This node as slurmd sees it (`slurmd -C`), with its memory capped at what jobs may use."""
    line = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    fields = dict(f.split("=", 1) for f in line.split())
    cpus = cpus or int(fields["CPUs"])
    memory = min(memory_mb, int(fields.get("RealMemory", memory_mb)))
    return f"NodeName={fields['NodeName']} CPUs={cpus} RealMemory={memory} State=UNKNOWN"


class SlurmCluster:
    """munged + slurmctld + slurmd with everything they write under `state`; `env` points clients at them."""

    def __init__(self, state: str | os.PathLike, memory_mb: int = 4000, cpus: int | None = None):
        self.state = Path(state)
        self.memory_mb, self.cpus = memory_mb, cpus
        self.pids: dict[str, int] = {}
        self.conf = self.state / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._linked = False

    # -- starting ---------------------------------------------------------------------------
    def __enter__(self) -> "SlurmCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> None:
        reason = why_not()
        if reason:
            raise RuntimeError(reason)
        munge = self.state / "munge"
        for d in (munge, self.state / "ctld", self.state / "spool"):
            d.mkdir(parents=True, exist_ok=True)
        munge.chmod(0o711)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket_path = munge / "munge.socket"
        self._daemon(
            "munged",
            ["munged", "--force", f"--socket={socket_path}", f"--key-file={key}", f"--log-file={munge / 'munged.log'}"]
            + [f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}"],
            munge / "munged.pid",
            timeout,
        )
        self.conf.write_text(self._conf(socket_path))
        self._link_system_conf()
        self._daemon("slurmctld", ["slurmctld"], self.state / "slurmctld.pid", timeout)
        self._daemon("slurmd", ["slurmd"], self.state / "slurmd.pid", timeout)
        self._wait_idle(timeout)

    def _conf(self, munge_socket: Path) -> str:
        s = self.state
        return "\n".join(
            [
                "ClusterName=dcsmtest",
                f"SlurmctldHost={socket.gethostname().split('.')[0]}",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={munge_socket}",
                f"StateSaveLocation={s / 'ctld'}",
                f"SlurmdSpoolDir={s / 'spool'}",
                f"SlurmctldPidFile={s / 'slurmctld.pid'}",
                f"SlurmdPidFile={s / 'slurmd.pid'}",
                f"SlurmctldLogFile={s / 'slurmctld.log'}",
                f"SlurmdLogFile={s / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "JobCompType=jobcomp/none",
                "MpiDefault=none",
                "MinJobAge=300",  # finished jobs stay visible to squeue, the status command without accounting
                "ReturnToService=2",
                _node_line(self.cpus, self.memory_mb),
                f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )

    def _link_system_conf(self) -> None:
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        if SYSTEM_CONF.is_symlink():  # left by a test that was killed before it stopped its cluster
            SYSTEM_CONF.unlink()
        SYSTEM_CONF.symlink_to(self.conf)
        self._linked = True

    def _daemon(self, name: str, cmd: list[str], pid_file: Path, timeout: float) -> None:
        """Start a daemon that forks into the background and writes its PID file."""
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} did not start: {proc.stderr.strip() or proc.stdout.strip()}")
        deadline = time.monotonic() + timeout
        while not (pid_file.exists() and pid_file.read_text().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} wrote no PID file {pid_file}")
            time.sleep(0.2)
        self.pids[name] = int(pid_file.read_text().split()[0])

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True, timeout=30
            ).stdout
            if out.strip() == "idle":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the node is not idle after {timeout:.0f} s (sinfo: {out.strip()!r})")
            time.sleep(0.5)

    # -- reading and stopping ---------------------------------------------------------------------
    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller remembers (finished ones for MinJobAge): id, name, state, comment."""
        out = subprocess.run(
            ["squeue", "-t", "all", "-h", "-o", "%i|%j|%T|%k"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        keys = ("id", "name", "state", "comment")
        return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]

    def stop(self, timeout: float = 30) -> None:
        """Stop the daemons this object started, by PID (slurmd first, munged last); unlink the conf."""
        for name in reversed(DAEMONS):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self._linked and SYSTEM_CONF.is_symlink() and os.readlink(SYSTEM_CONF) == str(self.conf):
            SYSTEM_CONF.unlink()
        self._linked = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of a daemon that forked from us is not alive; our own children are reaped by waitpid
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
