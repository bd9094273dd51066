"""Text helpers."""


def shout(text: str) -> str:
    """Returns text in capitals, with an exclamation mark."""
    return text.upper() + "!"
