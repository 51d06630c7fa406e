"""The one exception type that reaches users as a single clear line (see `lth.cli`)."""


class LTHError(Exception):
    """A problem with the user's input (name, value, file) that training cannot proceed past.

    The message must name the offending thing: the file, the config key, the value.
    The CLI prints it as one line and exits with status 2; anything else is a bug.
    """
