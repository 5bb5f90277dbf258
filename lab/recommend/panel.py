"""The recommender as a widget: the questions as controls, the answer as HTML."""

from __future__ import annotations

from .rules import DIRECTIONS, Needs, Recommendation, recommend


# -- the widget ------------------------------------------------------------------------
def _html_text(text: str) -> str:
    import html
    import re

    escaped = html.escape(text, quote=False)
    # The only Markdown the reasons use: **bold** and [label](href).
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2" target="_blank">\1</a>', escaped)


def recommendation_html(rec: Recommendation) -> str:
    parts = [f"<p>{_html_text(f'**Use {rec.label}** (rule: {rec.rule}).')}</p><p>Why:</p><ul>"]
    parts += [f"<li>{_html_text(r)}</li>" for r in rec.reasons]
    links = ", ".join(_html_text(e.markdown()) for e in rec.evidence)
    parts.append(f"<li>Evidence: {links}</li></ul>")
    if rec.caveats:
        parts.append("<p>Watch out:</p><ul>")
        parts += [f"<li>{_html_text(c)}</li>" for c in rec.caveats]
        links = ", ".join(_html_text(e.markdown()) for e in rec.caveat_evidence)
        parts.append(f"<li>Evidence: {links}</li></ul>")
    return "".join(parts)


class RecommenderPanel:
    """The questions as widgets, the answer as HTML, updated on every change.

    Programmatic twins: set ``panel.consumer.value = "server"`` (or any other
    control's ``.value``) and read ``panel.recommendation`` /
    ``panel.answer.value``: the same code path a click takes.
    """

    def __init__(self, needs: Needs | None = None) -> None:
        import ipywidgets as w

        n = needs or Needs()
        style = {"description_width": "initial"}
        self.consumer = w.ToggleButtons(
            options=[("a server", "server"), ("a browser or app", "browser")],
            value=n.consumer,
            description="Who consumes the events?",
            style=style,
        )
        self.direction = w.ToggleButtons(
            options=[(label, key) for key, label in DIRECTIONS.items()],
            value=n.direction,
            description="Most traffic goes",
            style=style,
        )
        self.reachable = w.Checkbox(
            n.reachable, description="A server consumer can be reached at a public URL (inbound)"
        )
        self.closed = w.Checkbox(
            n.may_be_closed,
            description="It may be closed or suspended when it must be told (app, closed tab)",
        )
        self.offline = w.Checkbox(
            n.must_survive_offline, description="Events must survive the consumer being offline"
        )
        self.rate = w.FloatLogSlider(
            value=max(n.events_per_second, 1e-4),
            base=10,
            min=-4,
            max=4,
            step=0.1,
            description="Events per second",
            style=style,
        )
        self.mobile = w.Checkbox(n.mobile, description="Mobile clients")
        self.proxies = w.Checkbox(
            n.behind_proxies, description="Behind buffering proxies / strict firewalls"
        )
        self.answer = w.HTML()
        self.controls = [self.consumer, self.direction, self.reachable, self.closed,
                         self.offline, self.rate, self.mobile, self.proxies]  # fmt: skip
        for control in self.controls:
            control.observe(self._update, names="value")
        self.widget = w.VBox(
            [w.HTML("<b>Which transport?</b>"), *self.controls, self.answer],
            layout=w.Layout(border="1px solid #ccc", padding="6px"),
        )
        self.recommendation: Recommendation
        self._update()

    def needs(self) -> Needs:
        return Needs(
            consumer=self.consumer.value,
            direction=self.direction.value,
            must_survive_offline=self.offline.value,
            events_per_second=self.rate.value,
            mobile=self.mobile.value,
            behind_proxies=self.proxies.value,
            reachable=self.reachable.value,
            may_be_closed=self.closed.value,
        )

    def set_needs(self, needs: Needs) -> None:
        """Set every control from ``needs`` (what a learner does by clicking)."""
        self.consumer.value = needs.consumer
        self.direction.value = needs.direction
        self.reachable.value = needs.reachable
        self.closed.value = needs.may_be_closed
        self.offline.value = needs.must_survive_offline
        self.rate.value = max(needs.events_per_second, 1e-4)
        self.mobile.value = needs.mobile
        self.proxies.value = needs.behind_proxies

    def _update(self, _change: object = None) -> None:
        self.recommendation = recommend(self.needs())
        self.answer.value = recommendation_html(self.recommendation)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def close(self) -> None:
        for control in self.controls:
            control.unobserve(self._update, names="value")
        self.widget.close()
