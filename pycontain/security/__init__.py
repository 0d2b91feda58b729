"""Confinement of a container: capabilities, no_new_privs, seccomp, masked paths, the API socket.

Two halves, kept apart on purpose:

- the daemon's half validates what the API asks for and turns it into plain data for
  the ContainerSpec (``capabilities``, ``options``, ``seccomp``, ``paths``, ``peer``);
  ``seccomp`` compiles a profile to BPF with libseccomp (pyseccomp), in the daemon only;
- the container's half, ``confine``, applies that data inside the container init.  The
  fork server imports it, so it stays small: python-prctl and ctypes, nothing else.
"""
