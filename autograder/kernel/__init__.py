"""The trust boundary: everything that starts, isolates, drives and questions a student's kernel.

- `isolation`: the sandbox a submission runs in (bubblewrap namespaces, or none for trusted work);
- `limits`: one memory and process limit over everything a sandbox runs (cgroups, or a watchdog);
- `zygote`, `boot`: warm kernels, forked from a process that imported torch once per worker;
- `provisioner`: how jupyter_client starts those kernels, so nbclient still drives them;
- `session`: one object owning a submission's kernel from start to stop, under one time budget;
- `execute`: running the notebook's cells;
- `probe`, `codec`, `kernel_side`: asking the kernel for values and calls, and decoding the answers;
- `integrity`: what the submission did to the grader, from its source and from inside its kernel.
"""
