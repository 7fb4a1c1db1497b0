"""Where a Hugging Face model comes from, and reading it without the network.

A model's ``path`` option is a local directory written by ``save_pretrained``
(config, weights, tokenizer files and the image processor's
``preprocessor_config.json``).  Everything is read with
``local_files_only=True``: nothing is downloaded unless the user sets
``online: true``, and then ``path`` may also be a hub id.  transformers'
progress bars and load warnings are silenced while reading (the recipe prints
one load report of its own).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from simla_bench.errors import ConfigError, UserError


@dataclass(frozen=True)
class HFSource:
    """``path`` (a local directory, or a hub id when ``online``) of one model."""

    model: str  # the registered model name, for messages
    path: str
    online: bool = False

    @property
    def local(self) -> bool:
        return Path(self.path).expanduser().is_dir()

    @property
    def where(self) -> str:
        return str(Path(self.path).expanduser().resolve()) if self.local else self.path

    def kwargs(self) -> dict[str, Any]:
        """What every ``from_pretrained`` call gets."""
        return {"local_files_only": not self.online}

    def check(self) -> None:
        """A local directory with a ``config.json`` (or, online, any name); one line otherwise."""
        if not self.path:
            raise ConfigError(f"model '{self.model}': option 'path' is not set",
                              hint=f"give the save_pretrained directory: model: {{name: {self.model}, "
                                   f"options: {{path: /path/to/dir}}}} or --model {self.model}:/path/to/dir")
        if self.local:
            if not (Path(self.where) / "config.json").is_file():
                raise ConfigError(f"model '{self.model}': {self.where} has no config.json",
                                  hint="point path at a directory written by save_pretrained")
            return
        if not self.online:
            raise ConfigError(f"model '{self.model}': path '{self.path}' is not a local directory",
                              hint="simla-bench reads only local save_pretrained directories; set "
                                   "model.options.online: true to let transformers download a hub id")

    def config(self) -> dict[str, Any]:
        """The model's ``config.json`` as a dict (local) or as transformers reads it (online)."""
        self.check()
        if self.local:
            from simla_bench.textfiles import read_json_file

            data = read_json_file(Path(self.where) / "config.json", f"model '{self.model}' config", ConfigError)
            if not isinstance(data, dict):
                raise ConfigError(f"model '{self.model}': {self.where}/config.json is not a JSON object")
            return data
        from transformers import AutoConfig

        with quiet_transformers():
            return AutoConfig.from_pretrained(self.path, **self.kwargs()).to_dict()

    def load(self, what: str, loader: Any, **kwargs: Any) -> Any:
        """``loader.from_pretrained(path, local_files_only=..., **kwargs)`` with one-line errors."""
        self.check()
        try:
            with quiet_transformers():
                return loader.from_pretrained(self.where, **self.kwargs(), **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            first = " ".join(str(exc).split())[:300]
            raise UserError(f"model '{self.model}': cannot read the {what} from {self.where}: {first}",
                            hint="save it there with save_pretrained (docs/models.md)") from None


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' progress bars and warnings off for the duration."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def architecture(config: dict[str, Any]) -> str:
    """The first of ``config.json``'s ``architectures`` ("" when it names none)."""
    names = config.get("architectures") or []
    return str(names[0]) if names else ""
