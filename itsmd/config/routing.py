"""What correlation reads from the configuration: the rules and the service catalogue, loaded and swapped
together (a reload adopts both or neither)."""

from __future__ import annotations

from dataclasses import dataclass, field

from itsmd.config.model import Config
from itsmd.config.rules import load_rules
from itsmd.config.services import load_services
from itsmd.core.rule import RuleSet
from itsmd.core.service import Catalogue
from itsmd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Routing:
    rules: RuleSet = field(default_factory=RuleSet)
    services: Catalogue = field(default_factory=Catalogue)


def load_routing(config: Config) -> Routing:
    """The rules and services `config` names; ConfigError with every problem of both."""
    problems: list[str] = []
    rules, services = RuleSet(), Catalogue()
    try:
        rules = load_rules(config.rules, notifiers=[n.name for n in config.notifiers])
    except ConfigError as e:
        problems += e.problems
    try:
        services = load_services(config.services)
    except ConfigError as e:
        problems += e.problems
    if problems:
        raise ConfigError(problems)
    return Routing(rules, services)
