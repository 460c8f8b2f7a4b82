"""Run a command on a disk that fails it, by unprivileged means that work as root too (no mount):
`python -m tests.faults.confine [--max-file-bytes N] [--obey-permissions] -- command...`

--max-file-bytes: no file grows past N bytes (RLIMIT_FSIZE), as on a full disk. SIGXFSZ is ignored, so a write past
the limit fails with EFBIG instead of killing the process.
--obey-permissions: as root, give up the capabilities that override file permissions (dropped from the bounding set
before exec, so the command never has them): a file or directory without its write bit is then read-only to it, as
it is to any other user.
"""

import argparse
import ctypes
import os
import resource
import signal
import sys

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-file-bytes", type=int)
    parser.add_argument("--obey-permissions", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.max_file_bytes is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.max_file_bytes, args.max_file_bytes))
    if args.obey_permissions and os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
            if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                sys.exit(f"cannot drop capability {capability}: {os.strerror(ctypes.get_errno())}")
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
