#!/usr/bin/env python3
"""`shortfall run` with an unwritable state directory, and with a full disk.

The issue: "a disk full or unwritable state directory: a clear error, no
corrupt state, no committed offsets past what was stored."

One scenario (`gen --seed S --events N --partitions 4`) goes to a file, for
`shortfall replay`, and to fresh input topics in two slices,
[0, N/3) and [N/3, N), with `gen --to-kafka --keep-partitions` (the generator
is deterministic, so the slices are the file's records on the file's
partitions; restart_resumes.py relies on the same).

1. Unwritable. `state.dir` is a path below a regular file (we run as root,
   so chmod would not stop a write; ENOTDIR does). With the first slice on
   the inputs, `shortfall run` must exit 1 (README: state I/O is a runtime
   failure) or 2 (a configuration error: state.dir checked up front) within
   UNWRITABLE_TIMEOUT seconds, with an error line naming the
   directory and saying what failed ("Not a directory"); the group must
   hold no committed offset at all (ConsumerGroupCommand), and the regular
   file must be untouched.

2. Disk full, simulated with RLIMIT_FSIZE: writes past the limit fail with
   EFBIG ("File too large") because the child ignores SIGXFSZ (set in
   preexec_fn, after subprocess restored default dispositions; the test
   checks /proc/PID/status). A fixed limit set at exec would land at a
   different point each run, since how much RocksDB writes depends on how
   many commits the timing gives. So the run starts without a limit, reads
   the first slice until the group has committed all of it, and only then
   the test measures the largest file under the state dir and lowers the
   running process's limit (prlimit) to that size + LIMIT_MARGIN. The second
   slice, produced at --rate records/s so that it is still arriving when a
   commit fails, grows the stage-two stores' write-ahead logs past it: the
   failure hits mid-stream, after commits that succeeded. The run's stderr
   is a pipe (a log file would be capped too).
   The run must exit 1 within FAULT_TIMEOUT seconds of the second slice's
   start, with an error line naming the state directory and "File too
   large"; the group's committed input offsets must have stopped between the
   two slices' ends (else the fault came too late to test anything).

3. No committed offsets past what was stored. Each task's store keeps
   "offset=N" (the next offset to read) as its checkpoint blob, in the same
   RocksDB WriteBatch as its state. ldb is not installed, so the test reads
   the checkpoints itself from the stores' write-ahead logs: RocksDB's log
   format is 32 KiB blocks of CRC32C-checked records, each a WriteBatch;
   the last checkpoint Put in the default column family before the first
   torn or bad record is what RocksDB's point-in-time recovery restores.
   (The stores were created by the faulty run and never reopened, and a
   memtable flush needs 16 MiB of writes, so the logs hold every commit; if
   a store has SST files or no log, its checkpoint is reported as not
   readable and only the restart below covers it.)
   at_least_once: for every input and repartition partition, the group's
   committed offset must be <= the task store's checkpoint (none committed
   when the store has none). exactly_once: the group's offsets commit in
   the transaction with the changelog, and RocksDB is written afterwards
   with "changelog=N", the changelog offset it reflects (docs/runtime.md),
   so there is no input offset to compare; the checkpoints are printed and
   the restart's exact totals are the check.

4. No corrupt state, nothing lost. Without the limit, on the same state
   dir, `run --until-idle --totals-csv` must exit 0 (every store opens and
   restores) and leave every input partition committed to its end. Its
   totals against `replay --totals-csv` of the whole file: exactly_once,
   equal in every column of every series; at_least_once, no series and no
   column below replay (nothing lost), and the excess is printed
   (duplicates allowed).

With --guarantee exactly_once every run gets --set
processing.guarantee=exactly_once.
Takes 10-15 s (60000 events); the timeouts bound it at about 5 minutes.

Usage: state_dir_faults.py SHORTFALL BOOTSTRAP_FILE [--guarantee at_least_once|exactly_once]
                           [--events N] [--seed S] [--rate R]
"""
import argparse
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kafka_testlib import (at_end, column_diff, create_topics, gen_and_replay, group_offsets,  # noqa: E402
                           kill_all, produce_args, read_varint, replay_totals, run_settings, run_totals, sh,
                           terminate)

UNWRITABLE_TIMEOUT = 30  # seconds `run` may take to give up on an unwritable state dir
FIRST_SLICE_TIMEOUT = 60  # seconds to commit the first slice
FAULT_TIMEOUT = 60  # seconds from the start of the second slice to the faulty run's exit
RESTART_TIMEOUT = 120  # a restart takes a few seconds
STOP_TIMEOUT = 10  # seconds after SIGTERM before SIGKILL, for a run that overstayed
LIMIT_MARGIN = 64 << 10  # bytes above the largest state file: a stage-two commit writes 100+ KiB
RUNTIME_EXIT = 1  # README: "1 runtime failure (... state I/O)"
# At start-up an unusable state.dir is state I/O (1) or, checked up front and named as the
# config key, a configuration error (2); either is clear. A crash or a kill is neither.
UNWRITABLE_EXITS = (1, 2)
INPUT_PARTITIONS = 4  # per input topic
REPARTITION_PARTITIONS = 4
CHECKPOINT_KEY = b"shortfall.checkpoint"


# --- RocksDB write-ahead log (the task stores' checkpoints) ------------------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def unmask_crc(masked):
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def wal_batches(data):
    """The WriteBatches of a RocksDB log file, up to the first torn or bad record (what
    kPointInTimeRecovery replays), and why reading stopped: 'end' or the defect."""
    block = 32768
    batches, pos, fragment = [], 0, None
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's trailer too short for a header is zero padding
            pos += left
            continue
        masked, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0 and length == 0:
            return batches, "zeroes at byte %d" % pos
        if kind > 4:  # recyclable or compressed logs: not written with this store's options
            return batches, "record type %d at byte %d" % (kind, pos)
        if 7 + length > left or pos + 7 + length > len(data):
            return batches, "torn record at byte %d" % pos
        payload = data[pos + 7:pos + 7 + length]
        if unmask_crc(masked) != crc32c(bytes([kind]) + payload):
            return batches, "checksum mismatch at byte %d" % pos
        pos += 7 + length
        if kind == 1:  # full
            batches.append(payload)
            fragment = None
        elif kind == 2:  # first
            fragment = bytearray(payload)
        elif fragment is None:
            return batches, "fragment without a first at byte %d" % pos
        else:  # middle, last
            fragment += payload
            if kind == 4:
                batches.append(bytes(fragment))
                fragment = None
    return batches, "end" if pos == len(data) else "torn header at byte %d" % pos


def _slice(b, pos):
    n, pos = read_varint(b, pos)
    return b[pos:pos + n], pos + n


def batch_checkpoint(batch):
    """The checkpoint blob a WriteBatch puts in the default column family, or None."""
    pos, found = 12, None  # sequence number (8), count (4)
    while pos < len(batch):
        tag = batch[pos]
        pos += 1
        cf = 0
        if tag in (0x4, 0x5, 0x8):  # column family deletion, value, single deletion
            cf, pos = read_varint(batch, pos)
        if tag in (0x0, 0x3, 0x4, 0x7, 0x8):  # deletions and log data: one slice
            _, pos = _slice(batch, pos)
        elif tag in (0x1, 0x5):  # values: key, value
            key, pos = _slice(batch, pos)
            value, pos = _slice(batch, pos)
            if cf == 0 and key == CHECKPOINT_KEY:
                found = value
        elif tag != 0xD:  # noop
            raise ValueError("write batch record type %d" % tag)
    return found


def store_checkpoint(task_dir):
    """(checkpoint blob or None, note) of a store, from its write-ahead logs."""
    names = os.listdir(task_dir)
    logs = sorted((n for n in names if re.fullmatch(r"\d+\.log", n)), key=lambda n: int(n[:-4]))
    ssts = [n for n in names if n.endswith(".sst")]
    blob, notes = None, []
    for name in logs:
        with open(os.path.join(task_dir, name), "rb") as f:
            data = f.read()
        batches, why = wal_batches(data)
        for b in batches:
            blob = batch_checkpoint(b) or blob
        notes.append("%s %d B, %d batches, %s" % (name, len(data), len(batches), why))
    if ssts:
        notes.append("%d SST files: a checkpoint flushed from the log is not readable here" % len(ssts))
    return blob, "; ".join(notes) or "no log"


# --- the test --------------------------------------------------------------------------------

def ignore_sigxfsz():
    # Runs after subprocess restored SIGXFSZ to SIG_DFL (restore_signals): a write past
    # RLIMIT_FSIZE then fails with EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def ignores_sigxfsz(pid):
    with open("/proc/%d/status" % pid) as f:
        mask = int(re.search(r"^SigIgn:\s*([0-9a-f]+)", f.read(), re.M).group(1), 16)
    return bool(mask & (1 << (signal.SIGXFSZ - 1)))


def state_files(root):
    """[(size, path)] of the regular files under root, largest first."""
    out = []
    for d, _, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            out.append((os.path.getsize(p), p))
    return sorted(out, reverse=True)


class StderrPipe:
    """Drains a child's stderr pipe into memory, so a chatty child never blocks on it."""

    def __init__(self, proc):
        self.lines = []
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, pipe):
        for line in pipe:
            self.lines.append(line.rstrip("\n"))

    def text(self):
        self._thread.join(timeout=10)
        return "\n".join(self.lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shortfall")
    p.add_argument("bootstrap_file")
    p.add_argument("--guarantee", choices=("at_least_once", "exactly_once"), default="at_least_once")
    p.add_argument("--events", type=int, default=60000)
    p.add_argument("--seed", default="47")
    p.add_argument("--rate", type=int, default=20000,
                   help="records/s of the second slice, so the fault lands while it is still arriving (0: as fast "
                        "as possible; then the run may read it all before a commit fails)")
    a = p.parse_args()
    eos = a.guarantee == "exactly_once"
    bootstrap = open(a.bootstrap_file).read().strip()
    base = "sdfault%d-%d" % (os.getpid(), int(time.time()))
    inputs = {"shipments": base + ".shipments", "customs": base + ".customs"}
    create_topics(bootstrap, inputs.values(), INPUT_PARTITIONS)
    input_tps = {(t, i) for t in inputs.values() for i in range(INPUT_PARTITIONS)}

    tmp = tempfile.mkdtemp(prefix="shortfall-state-faults-")
    children = []
    problems = []
    t_start = time.time()
    try:
        gen = [a.shortfall, "gen", "--seed", a.seed, "--events", str(a.events), "--partitions",
               str(INPUT_PARTITIONS)]
        _, replay_csv, _ = gen_and_replay(a.shortfall, gen, tmp)

        def produce_cmd(first, last, rate=0):
            return produce_args(gen, bootstrap, inputs, first, last, rate)

        def run_cmd(app, state_dir, extra=()):
            topics = dict(inputs, alerts=app + ".alerts", dlq=app + ".dlq")
            return ([a.shortfall, "run", "--brokers", bootstrap, "--set", "processing.guarantee=" + a.guarantee] +
                    run_settings(app, topics, state_dir, REPARTITION_PARTITIONS) + list(extra))

        def error_lines(err, needle):
            return [line for line in err.splitlines() if needle in line]

        first = a.events // 3
        sh(produce_cmd(0, first))

        # --- 1. unwritable: state.dir below a regular file.
        app_a = base + "-unwritable"
        blocker = os.path.join(tmp, "not-a-directory")
        blocker_text = "a regular file where the state directory's parent should be\n"
        with open(blocker, "w") as f:
            f.write(blocker_text)
        state_a = os.path.join(blocker, "state")
        t0 = time.time()
        run_a = subprocess.Popen(run_cmd(app_a, state_a), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
        children.append(run_a)
        try:
            _, err_a = run_a.communicate(timeout=UNWRITABLE_TIMEOUT)
        except subprocess.TimeoutExpired:
            run_a.kill()
            _, err_a = run_a.communicate()
            problems.append("unwritable: `run` still running %d s after start (killed)" % UNWRITABLE_TIMEOUT)
        seconds_a = time.time() - t0
        if run_a.returncode not in UNWRITABLE_EXITS:
            problems.append("unwritable: `run` exited %s, want %s (a state I/O or configuration error)"
                            % (run_a.returncode, " or ".join(map(str, UNWRITABLE_EXITS))))
        lines_a = error_lines(err_a, state_a)
        clear_a = [line for line in lines_a if "not a directory" in line.lower()]
        if not clear_a:
            problems.append("unwritable: no error line names %s and says 'Not a directory'; lines naming it: %s"
                            % (state_a, lines_a or "none"))
        if not os.path.isfile(blocker) or open(blocker).read() != blocker_text:
            problems.append("unwritable: the regular file %s was changed" % blocker)
        offsets_a = group_offsets(bootstrap, app_a)
        committed_a = {tp: c for tp, (c, _) in offsets_a.items() if c is not None}
        if committed_a:
            problems.append("unwritable: the group %s committed offsets %s" % (app_a, committed_a))
        print("unwritable state dir: exit %s after %.1f s, group offsets committed: %d; error:\n  %s"
              % (run_a.returncode, seconds_a, len(committed_a), "\n  ".join(clear_a or lines_a or ["(none)"])))
        if problems:
            print("--- run (unwritable) stderr\n" + err_a[-3000:])

        # --- 2. disk full: RLIMIT_FSIZE lowered once the first slice is committed.
        app_b = base + "-diskfull"
        state_b = os.path.join(tmp, "state-b")
        run_b = subprocess.Popen(run_cmd(app_b, state_b), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, preexec_fn=ignore_sigxfsz)
        children.append(run_b)
        err_b = StderrPipe(run_b)
        deadline = time.time() + FIRST_SLICE_TIMEOUT
        offsets = {}
        caught_up = False
        while time.time() < deadline and run_b.poll() is None:
            offsets = {tp: v for tp, v in group_offsets(bootstrap, app_b).items() if tp in input_tps}
            if at_end(offsets, len(input_tps), first):
                caught_up = True
                break
            time.sleep(0.5)
        if not caught_up:
            problems.append("disk full: the run never committed the first slice (exit %s); last offsets %s"
                            % (run_b.poll(), offsets))
            print("\n".join(problems) + "\n--- run (disk full) stderr\n" + err_b.text()[-3000:])
            return 1
        if not ignores_sigxfsz(run_b.pid):
            problems.append("disk full: the child does not ignore SIGXFSZ; the limit would kill it")
        files = state_files(state_b)
        limit = files[0][0] + LIMIT_MARGIN
        resource.prlimit(run_b.pid, resource.RLIMIT_FSIZE, (limit, limit))
        print("disk full: first slice (%d records) committed; largest state file %d B (%s); "
              "RLIMIT_FSIZE of pid %d now %d B"
              % (first, files[0][0], os.path.relpath(files[0][1], state_b), run_b.pid, limit))
        t0 = time.time()
        producer = subprocess.Popen(produce_cmd(first, a.events, a.rate), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
        children.append(producer)
        try:
            run_b.wait(timeout=FAULT_TIMEOUT)
        except subprocess.TimeoutExpired:
            files = state_files(state_b)
            problems.append("disk full: `run` still running %d s after the second slice (limit %d B never "
                            "hit? largest files %s)"
                            % (FAULT_TIMEOUT, limit, [(s, os.path.relpath(f, state_b)) for s, f in files[:3]]))
            terminate(run_b, STOP_TIMEOUT)
        seconds_b = time.time() - t0
        _, produced = producer.communicate(timeout=120)
        if producer.returncode != 0:
            problems.append("producing the second slice failed: %s" % produced[-2000:])
        text_b = err_b.text()
        if run_b.returncode != RUNTIME_EXIT:
            problems.append("disk full: `run` exited %s, want %d (a state I/O failure)"
                            % (run_b.returncode, RUNTIME_EXIT))
        lines_b = error_lines(text_b, state_b)
        clear_b = [line for line in lines_b if "File too large" in line]
        if not clear_b:
            problems.append("disk full: no error line names %s and says 'File too large'; lines naming it: %s"
                            % (state_b, lines_b or "none"))
        m = re.search(r"(\d+) input records .* (\d+) commits", text_b)
        print("disk full: exit %s %.1f s after the second slice started (%d records at %s/s); the run's counts: %s; "
              "error:\n  %s"
              % (run_b.returncode, seconds_b, a.events - first, a.rate or "max",
                 m.group(0) if m else "(no counts line)",
                 "\n  ".join(clear_b or lines_b or ["(none)"])))

        # --- 3. committed offsets against the stores' checkpoints.
        offsets_b = group_offsets(bootstrap, app_b)
        committed_input = sum(offsets_b.get(tp, (None, 0))[0] or 0 for tp in input_tps)
        if not first <= committed_input < a.events:
            problems.append("disk full: the group committed %d input records; the fault should stop it between "
                            "the first slice (%d) and the end (%d)" % (committed_input, first, a.events))
        repartition = base + "-diskfull-volumes-repartition"
        task_tps = sorted(input_tps | {(repartition, i) for i in range(REPARTITION_PARTITIONS)})
        app_dir = os.path.join(state_b, app_b)
        table, ahead, unreadable, torn, stored_by_tp = [], [], [], [], {}
        for topic, part in task_tps:
            name = "%s-%d" % (topic, part)
            task_dir = os.path.join(app_dir, name)
            committed = offsets_b.get((topic, part), (None, None))[0]
            if not os.path.isdir(task_dir):
                problems.append("disk full: no store for %s in %s" % (name, app_dir))
                continue
            blob, note = store_checkpoint(task_dir)
            if "torn" in note or "checksum" in note:
                torn.append(name)
            table.append("  %-48s committed %-6s store %-15s %s"
                         % (name, committed, (blob or b"-").decode(errors="replace"), note))
            m = re.fullmatch(rb"(offset|changelog)=(-?\d+)", blob or b"")
            if blob is None and "SST" in note:
                unreadable.append(name)
                continue
            if blob is not None and not m:
                problems.append("store %s: checkpoint %r is neither offset=N nor changelog=N" % (name, blob))
                continue
            kind, stored = (m.group(1).decode(), int(m.group(2))) if m else ("offset", None)
            if eos:
                continue  # changelog=N counts changelog records, not input offsets
            if kind != "offset":
                problems.append("store %s: at_least_once wrote checkpoint %r, want offset=N" % (name, blob))
                continue
            stored_by_tp[(topic, part)] = stored
            if committed is not None and (stored is None or committed > stored):
                ahead.append("%s: committed %d, store %s" % (name, committed, stored))
        print("disk full: group offsets and task store checkpoints (%d input records committed of %d):\n%s"
              % (committed_input, a.events, "\n".join(table)))
        print("disk full: stores whose log ends in a torn record: %s" % (torn or "none"))
        if unreadable:
            print("disk full: checkpoints not readable from the logs (restart covers them): %s" % unreadable)
        if ahead:
            problems.append("committed offsets past what the stores hold: %s" % ahead)
        if eos:
            print("exactly_once: stores record the changelog offset they reflect (docs/runtime.md: RocksDB is "
                  "written after the transaction), not input offsets; the restart's exact totals are the check")
        if problems:
            print("--- run (disk full) stderr\n" + text_b[-3000:])

        # --- 4. restart without the limit: every store opens, totals against replay.
        run_csv = os.path.join(tmp, "restart.csv")
        t0 = time.time()
        restart = subprocess.Popen(run_cmd(app_b, state_b, ["--until-idle", "--totals-csv", run_csv]),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        children.append(restart)
        try:
            _, err_r = restart.communicate(timeout=RESTART_TIMEOUT)
        except subprocess.TimeoutExpired:
            terminate(restart, STOP_TIMEOUT)
            _, err_r = restart.communicate()
            problems.append("restart: `run --until-idle` still running after %d s (stopped with SIGTERM): it never "
                            "saw every partition caught up" % RESTART_TIMEOUT)
        if restart.returncode != 0:
            problems.append("restart: `run --until-idle` exited %s:\n%s"
                            % (restart.returncode, "\n".join(err_r.splitlines()[-5:])))
        offsets_r = group_offsets(bootstrap, app_b)
        uncommitted = {tp: v for tp, v in offsets_r.items() if tp in input_tps and v[0] != v[1]}
        if uncommitted or not input_tps <= set(offsets_r):
            # README: --until-idle stops "once all input is processed and committed".
            problems.append("restart: input partitions not committed to their end {partition: (committed, end, "
                            "store checkpoint after the fault)}: %s"
                            % ({"%s-%d" % tp: v + (stored_by_tp.get(tp),) for tp, v in uncommitted.items()}
                               or sorted(input_tps - set(offsets_r))))
        m = re.search(r"(\d+) input records .* (\d+) commits", err_r)
        excess_series, excess = [], {}
        if os.path.exists(run_csv):
            want = replay_totals(replay_csv)
            got = run_totals([run_csv])
            if len(want) < 20:
                problems.append("scenario too small to test anything: %d series" % len(want))
            for key in sorted(set(want) | set(got)):
                w, g = want.get(key), got.get(key)
                if w is None or g is None:
                    problems.append("series %s: run %s, replay %s" % (key, g, w))
                    continue
                diff = column_diff(w, g)
                if not diff:
                    continue
                if eos:
                    problems.append("%s: {column: (run, replay)} %s" % (key, diff))
                elif any(gv is None or wv is None or gv < wv for gv, wv in diff.values()):
                    problems.append("%s lost counts: {column: (run, replay)} %s" % (key, diff))
                else:
                    excess_series.append(key)
                    if key[1] == "*":
                        for k, (gv, wv) in diff.items():
                            excess[k] = excess.get(k, 0) + gv - wv
        else:
            want = {}
            problems.append("restart wrote no totals CSV")
        print("restart: exit %s after %.1f s, %s; totals vs replay over %d series: %s"
              % (restart.returncode, time.time() - t0, m.group(0) if m else "(no counts line)", len(want),
                 "equal" if not excess_series else
                 "%d series above replay (duplicates), group totals +%s (fixed-point units)"
                 % (len(excess_series), excess)))

        if problems:
            print("PROBLEMS:\n" + "\n".join(problems[:40]))
            print("--- restart stderr\n" + err_r[-3000:])
            return 1
        print("state dir faults (%s): unwritable dir refused in %.1f s with no offsets; disk full at %d B stopped "
              "the run with %d of %d input records committed, %s; restart %s; %.0f s in all"
              % (a.guarantee, seconds_a, limit, committed_input, a.events,
                 "offsets committed with the changelog" if eos else "no offset past its store",
                 "matches replay exactly" if not excess_series else "has no loss", time.time() - t_start))
        return 0
    finally:
        kill_all(children)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
