"""What correlation and remediation read from the configuration: the rules, the service catalogue and the
playbooks, loaded and swapped together (a reload adopts all or none)."""

from __future__ import annotations

from dataclasses import dataclass, field

from itsmd.config.model import Config
from itsmd.config.playbooks import read_playbooks
from itsmd.config.rules import load_rules
from itsmd.config.services import load_services
from itsmd.core.playbook import PlaybookSet
from itsmd.core.rule import RuleSet
from itsmd.core.service import Catalogue
from itsmd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Routing:
    rules: RuleSet = field(default_factory=RuleSet)
    services: Catalogue = field(default_factory=Catalogue)
    playbooks: PlaybookSet = field(default_factory=PlaybookSet)


def load_routing(config: Config) -> Routing:
    """The rules, services and playbooks `config` names; ConfigError with every problem of all three. A rule may
    name only a playbook that a playbook file declares."""
    notifiers = [n.name for n in config.notifiers]
    loaded = read_playbooks(config.playbooks, config.base_dir, {n.name: n.type for n in config.notifiers},
                            alertmanagers=bool(config.alertmanagers))
    problems: list[str] = list(loaded.problems)
    rules, services = RuleSet(), Catalogue()
    try:
        rules = load_rules(config.rules, notifiers=notifiers, playbooks=loaded.declared)
    except ConfigError as e:
        problems += e.problems
    try:
        services = load_services(config.services)
    except ConfigError as e:
        problems += e.problems
    if problems:
        raise ConfigError(problems)
    return Routing(rules, services, loaded.playbooks)
