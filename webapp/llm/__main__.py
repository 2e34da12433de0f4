"""``python -m webapp.llm ...`` - the ``flask llm`` commands without Flask."""

from .cli import llm

if __name__ == "__main__":
    llm(prog_name="python -m webapp.llm")
