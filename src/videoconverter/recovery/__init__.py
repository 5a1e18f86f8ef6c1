"""Recovery after a worker process dies: its leases handed back at once, its private temp files removed.

Each worker process keeps a state folder of its own (:mod:`.workspace`): its jobs' private temp dirs and a
journal of the leases it holds (:mod:`.journal`). The folder is named after the process (:mod:`.identity`: pid,
start time and boot, since a pid alone may be reused), so whoever finds it can tell whether its owner still
lives. When the owner is gone, :mod:`.reaper` hands the journal's leases back to the broker and removes the
folder: `up`'s supervisor does it the moment it sees a worker die, and every worker and `up` at start-up for
the folders of processes that died before.
"""
