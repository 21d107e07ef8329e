"""The one base class of every error a user can fix from its message alone.

Each subclass's message names the field or file and the fix; the command-line entry points turn any of them into
one line on stderr and exit code 2, so a config mistake never ends in a traceback from deep inside torch.
"""


class UserError(Exception):
    """A mistake in the input (config, data, files on disk), not a bug: the message says what to change."""
