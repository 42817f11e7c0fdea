"""MerchandisingService: business rules (issue 12, docs/merchandising.md).

Each RPC converts, calls the facade with the caller's API key name (who made the change: the rule's
history records it) and replies. The conversions of this service's messages live here: they concern
no other service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import grpc

from models.errors import InvalidArgument
from models.merchandising.diversity import DiversityPolicy
from models.merchandising.experiments import Experiment, ExperimentSpec, Variant
from models.merchandising.merchandiser import Placement
from models.merchandising.placements import PlacementPlan
from models.merchandising.rules import ACTIONS, Rule, RuleChange, RuleSpec
from models.service import Seenext
from models.serving.channel_rules import Source
from models.serving.recommender import Recommended
from protos.seenext.v1 import common_pb2, merchandising_pb2, merchandising_pb2_grpc
from server import auth, convert

NO_KEY = "(no key: SEENEXT_AUTH=0)"  # who changed a rule when the server checks no keys


def caller_name() -> str:
    key = auth.current_key()
    return key.name if key is not None else NO_KEY


def spec(msg: merchandising_pb2.RuleSpec, field: str = "spec") -> RuleSpec:
    action = convert.enum_name(merchandising_pb2.RuleAction, msg.action, "RULE_ACTION_").lower()
    if not action:
        raise InvalidArgument(
            f"{field}.action", f"is required: one of {', '.join('RULE_ACTION_' + a.upper() for a in ACTIONS)}"
        )
    channels = []
    for i, value in enumerate(msg.channels):
        name = convert.channel(value)
        if not name or name.startswith("<"):
            raise InvalidArgument(f"{field}.channels[{i}]", f"must be a channel, got {value}")
        channels.append(name)
    return RuleSpec(
        name=msg.name,
        condition=msg.condition,
        action=action,
        placements=tuple(msg.placements),
        channels=tuple(channels),
        weight=msg.weight,
        position=msg.position,
        share=msg.share,
        enabled=msg.enabled,
    )


def spec_msg(s: RuleSpec) -> merchandising_pb2.RuleSpec:
    return merchandising_pb2.RuleSpec(
        name=s.name,
        placements=list(s.placements),
        channels=[convert.channel_value(c) for c in s.channels],
        condition=s.condition,
        action=cast(
            merchandising_pb2.RuleAction,
            merchandising_pb2.RuleAction.Value(f"RULE_ACTION_{s.action.upper()}"),
        ),
        weight=s.weight,
        position=s.position,
        share=s.share,
        enabled=s.enabled,
    )


def rule_msg(r: Rule) -> merchandising_pb2.Rule:
    return merchandising_pb2.Rule(
        rule_id=r.rule_id,
        spec=spec_msg(r.spec),
        version=r.version,
        updated_by=r.updated_by,
        updated_at=convert.timestamp(r.updated_at),
    )


def change_msg(c: RuleChange) -> merchandising_pb2.RuleChange:
    return merchandising_pb2.RuleChange(
        rule_id=c.rule_id,
        version=c.version,
        change=c.change,
        changed_by=c.changed_by,
        changed_at=convert.timestamp(c.changed_at),
        spec=spec_msg(c.spec),
    )


def _items(items: list[Recommended]) -> list[common_pb2.RecommendedItem]:
    return [convert.recommended_msg(r) for r in items]


def sources(msgs: Sequence[merchandising_pb2.CandidateSource]) -> tuple[Source, ...]:
    return tuple(Source(m.name, m.limit) for m in msgs)


def sources_msg(found: Sequence[Source]) -> list[merchandising_pb2.CandidateSource]:
    return [merchandising_pb2.CandidateSource(name=s.name, limit=s.limit) for s in found]


def plan(msg: merchandising_pb2.PlacementPlan) -> PlacementPlan:
    d = msg.diversity
    return PlacementPlan(
        msg.placement,
        sources(msg.sources),
        msg.exploration_share if msg.HasField("exploration_share") else None,
        DiversityPolicy(d.category_share, d.attribute, d.near_duplicates)
        if msg.HasField("diversity")
        else None,
    )


def placement_msg(p: Placement) -> merchandising_pb2.PlacementPlan:
    msg = merchandising_pb2.PlacementPlan(
        placement=p.plan.placement,
        sources=sources_msg(p.plan.sources),
        is_default=p.is_default,
        version=p.version,
        updated_by=p.updated_by,
        updated_at=convert.timestamp(p.updated_at) if p.updated_at else None,
    )
    if p.plan.exploration_share is not None:
        msg.exploration_share = p.plan.exploration_share
    d = p.plan.diversity
    if d is not None:
        msg.diversity.CopyFrom(
            merchandising_pb2.DiversitySpec(
                category_share=d.category_share, attribute=d.attribute, near_duplicates=d.near_duplicates
            )
        )
    return msg


def experiment_spec(msg: merchandising_pb2.ExperimentSpec) -> ExperimentSpec:
    return ExperimentSpec(
        msg.name,
        msg.placement,
        tuple(Variant(v.name, v.share, sources(v.sources), tuple(v.rule_ids)) for v in msg.variants),
        msg.enabled,
    )


def experiment_msg(x: Experiment) -> merchandising_pb2.Experiment:
    spec = merchandising_pb2.ExperimentSpec(
        name=x.spec.name,
        placement=x.spec.placement,
        enabled=x.spec.enabled,
        variants=[
            merchandising_pb2.ExperimentVariant(
                name=v.name, share=v.share, sources=sources_msg(v.sources), rule_ids=list(v.rule_ids)
            )
            for v in x.spec.variants
        ],
    )
    return merchandising_pb2.Experiment(
        experiment_id=x.experiment_id,
        spec=spec,
        version=x.version,
        updated_by=x.updated_by,
        updated_at=convert.timestamp(x.updated_at),
    )


class MerchandisingServicer(merchandising_pb2_grpc.MerchandisingServiceServicer):
    def __init__(self, service: Seenext) -> None:
        self.service = service

    def CreateRule(
        self, request: merchandising_pb2.CreateRuleRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.CreateRuleResponse:
        rule = self.service.create_rule(spec(request.spec), caller_name())
        return merchandising_pb2.CreateRuleResponse(rule=rule_msg(rule))

    def UpdateRule(
        self, request: merchandising_pb2.UpdateRuleRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.UpdateRuleResponse:
        rule = self.service.update_rule(request.rule_id, spec(request.spec), caller_name())
        return merchandising_pb2.UpdateRuleResponse(rule=rule_msg(rule))

    def SetRuleEnabled(
        self, request: merchandising_pb2.SetRuleEnabledRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.SetRuleEnabledResponse:
        rule = self.service.set_rule_enabled(request.rule_id, request.enabled, caller_name())
        return merchandising_pb2.SetRuleEnabledResponse(rule=rule_msg(rule))

    def DeleteRule(
        self, request: merchandising_pb2.DeleteRuleRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.DeleteRuleResponse:
        return merchandising_pb2.DeleteRuleResponse(
            version=self.service.delete_rule(request.rule_id, caller_name())
        )

    def ListRules(
        self, request: merchandising_pb2.ListRulesRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.ListRulesResponse:
        version = self.service.rules_version()
        rules = self.service.merchandising_rules(request.placement)
        return merchandising_pb2.ListRulesResponse(rules=[rule_msg(r) for r in rules], rules_version=version)

    def GetRuleHistory(
        self, request: merchandising_pb2.GetRuleHistoryRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.GetRuleHistoryResponse:
        changes = self.service.rule_history(request.rule_id)
        return merchandising_pb2.GetRuleHistoryResponse(changes=[change_msg(c) for c in changes])

    def PreviewRule(
        self, request: merchandising_pb2.PreviewRuleRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.PreviewRuleResponse:
        which = request.WhichOneof("rule")
        if which is None:
            raise InvalidArgument("rule_id", "is required (a stored rule), or give spec (a new rule)")
        if which == "rule_id" and not request.rule_id:
            raise InvalidArgument("rule_id", "is required")
        rule = spec(request.spec) if which == "spec" else None
        try:  # the query's fields are named as in a RecommendRequest: here they sit under `request`
            query = convert.recommend_query(request.request)
            if rule is not None:
                without, with_rule = self.service.preview_rule(query, spec=rule)
            else:
                without, with_rule = self.service.preview_rule(query, rule_id=request.rule_id)
        except InvalidArgument as exc:
            if exc.field.startswith(("spec", "rule_id")):
                raise
            raise exc.within("request") from None
        return merchandising_pb2.PreviewRuleResponse(
            without_rule=_items(without), with_rule=_items(with_rule)
        )

    # -- placements and experiments --------------------------------------------------------------

    def ListPlacements(
        self, request: merchandising_pb2.ListPlacementsRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.ListPlacementsResponse:
        return merchandising_pb2.ListPlacementsResponse(
            placements=[placement_msg(p) for p in self.service.placements()]
        )

    def SetPlacement(
        self, request: merchandising_pb2.SetPlacementRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.SetPlacementResponse:
        stored = self.service.set_placement(plan(request.plan), caller_name())
        return merchandising_pb2.SetPlacementResponse(plan=placement_msg(stored))

    def ResetPlacement(
        self, request: merchandising_pb2.ResetPlacementRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.ResetPlacementResponse:
        if not request.placement:
            raise InvalidArgument("placement", "is required")
        reset = self.service.reset_placement(request.placement, caller_name())
        return merchandising_pb2.ResetPlacementResponse(plan=placement_msg(reset))

    def CreateExperiment(
        self, request: merchandising_pb2.CreateExperimentRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.CreateExperimentResponse:
        created = self.service.create_experiment(experiment_spec(request.spec), caller_name())
        return merchandising_pb2.CreateExperimentResponse(experiment=experiment_msg(created))

    def ListExperiments(
        self, request: merchandising_pb2.ListExperimentsRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.ListExperimentsResponse:
        return merchandising_pb2.ListExperimentsResponse(
            experiments=[experiment_msg(x) for x in self.service.experiments()]
        )

    def SetExperimentEnabled(
        self, request: merchandising_pb2.SetExperimentEnabledRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.SetExperimentEnabledResponse:
        changed = self.service.set_experiment_enabled(request.experiment_id, request.enabled, caller_name())
        return merchandising_pb2.SetExperimentEnabledResponse(experiment=experiment_msg(changed))

    def GetPlacementHistory(
        self, request: merchandising_pb2.GetPlacementHistoryRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.GetPlacementHistoryResponse:
        changes = self.service.placement_history(request.placement)
        return merchandising_pb2.GetPlacementHistoryResponse(
            changes=[
                merchandising_pb2.PlacementChange(change=c.change, plan=placement_msg(c.placement))
                for c in changes
            ]
        )

    def GetExperimentHistory(
        self, request: merchandising_pb2.GetExperimentHistoryRequest, context: grpc.ServicerContext
    ) -> merchandising_pb2.GetExperimentHistoryResponse:
        changes = self.service.experiment_history(request.experiment_id)
        return merchandising_pb2.GetExperimentHistoryResponse(
            changes=[
                merchandising_pb2.ExperimentChange(change=c.change, experiment=experiment_msg(c.experiment))
                for c in changes
            ]
        )
