"""The one base class of every error a user can fix from its message alone.

Each subclass's message names the field or file and the fix; the command-line entry points turn any of them into
one line on stderr and exit code 2, so a config mistake never ends in a traceback from deep inside torch.
"""


EXIT_USER_ERROR = 2  # a mistake in the input: one line on stderr names it and the fix
EXIT_INTERRUPTED = 3  # checkpointed after a stop signal: run it again to resume
EXIT_BUSY = 4  # another process holds the run's lock
EXIT_FAILED_JOBS = 1  # a Hydra multirun ran every job, and some failed (each named on stderr)


class UserError(Exception):
    """A mistake in the input (config, data, files on disk), not a bug: the message says what to change."""
