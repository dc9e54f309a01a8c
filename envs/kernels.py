"""The compiled dynamics: the step, new shoppers and journeys, the observation, the masks.

These numba kernels *are* the simulator's dynamics (the spec is :mod:`envs.core`'s
docstring); :class:`envs.core.ShopperCore` holds the arrays and calls them. Each kernel is
one loop over shoppers that reads and writes the core's arrays in place, so a step costs
one pass through memory and one Python call, whatever N.

The state is packed by type, one row per quantity (the core's named attributes are views
of these rows):

- ``floats`` ``(len(FLOATS), n)``, ``ints`` ``(len(INTS), n)``, ``flags`` ``(len(FLAGS), n)``;
- ``values`` ``(len(VALUES), n_actions, n)`` and ``action_flags`` ``(len(ACTION_FLAGS),
  n_actions, n)``: what each action is worth to / allowed for each shopper;
- ``expires`` ``(n_actions, n)``: the step until which each action offered is valid.

Facts owned by other modules (the trait rows of :mod:`envs.shoppers`, the ledger's terms,
the observation's columns, the catalogue's columns, the scenario's numbers)
reach the kernels as arrays built by the core (``layout``, ``table``, ``params``), never as
globals: numba's on-disk cache is keyed by this file alone, so a global read from another
module could outlive a change there.

Randomness: the kernels draw nothing. The core draws the step's uniforms ``u`` (4, n), and
:class:`envs.shoppers.Population` the shoppers' uniforms, normals and gammas, from the
generator passed in, in the order they always were drawn: the streams are numpy's, and the
kernels turn them into shoppers (:func:`draw`) and journeys (:func:`step`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# event codes, one per shopper per step (``ShopperCore.event``); truncation is apart
NOTHING, PURCHASE, EXIT_INTENT, LEFT, HARASSED, RETURNED, ABANDONED = range(7)

# packed state, one row per quantity
FLOATS = ("annoyance", "intent_appeal", "return_chance", "dwell")
INTS = (
    "t",
    "visit",
    "stage",
    "steps_at_stage",
    "interruptions",
    "edits",
    "substitutes",
    "agent_until",
    "offer_until",
)
FLAGS = ("alive", "away", "exit_intent", "harassed", "consent", "waits", "hesitation_rewarded")
VALUES = ("perceived", "discount", "expected_cost")
ACTION_FLAGS = ("static_ok", "offered")
# outputs of a step, beside the reward, the action applied and the event
OUTCOMES = ("terminated", "truncated", "ineligible", "opted_out")

_ANNOYANCE, _INTENT_APPEAL, _RETURN_CHANCE, _DWELL = range(len(FLOATS))
(
    _T,
    _VISIT,
    _STAGE,
    _STEPS_AT_STAGE,
    _INTERRUPTIONS,
    _EDITS,
    _SUBSTITUTES,
    _AGENT_UNTIL,
    _OFFER_UNTIL,
) = range(len(INTS))
_ALIVE, _AWAY, _EXIT_INTENT, _HARASSED, _CONSENT, _WAITS, _REWARDED = range(len(FLAGS))
_PERCEIVED, _DISCOUNT, _EXPECTED_COST = range(len(VALUES))
_STATIC_OK, _OFFERED = range(len(ACTION_FLAGS))
_TERMINATED, _TRUNCATED, _INELIGIBLE, _OPTED_OUT = range(len(OUTCOMES))

# ``table`` (len(TABLE), n_actions): the catalogue's columns the dynamics read
TABLE = (
    "onsite",
    "email",
    "once",
    "agent",
    "expiry",
    "annoyance",
    "send_cost",
    "purchase_cost",
    "voucher_liability",
)
_ONSITE, _EMAIL, _ONCE, _AGENT, _EXPIRY, _ANNOY, _SEND_COST, _PURCHASE_COST, _VOUCHER = range(
    len(TABLE)
)

# ``params``: the scenario's numbers
PARAMS = (
    "max_offers_per_shopper",
    "max_visits",
    "horizon",
    "opt_out_probability",
    "harassment_return_factor",
    "return_boost",
    "wait_penalty",
    "annoyance_weight",
    "exit_commitment",
    "buy_bias",
    "advance_bias",
    "session_steps",
    "annoyed_customer",
    "retained_customer",
    "dwell_cap",
)
(
    _MAX_OFFERS,
    _MAX_VISITS,
    _HORIZON,
    _OPT_OUT,
    _HARASS_RETURN,
    _RETURN_BOOST,
    _WAIT_PENALTY,
    _ANNOY_W,
    _COMMIT,
    _BUY_BIAS,
    _ADV_BIAS,
    _SESSION,
    _ANNOYED_FV,
    _RETAINED_FV,
    _DWELL_CAP,
) = range(len(PARAMS))

# ``layout``: trait rows, ledger terms and observation columns, by name, as the core found
# them in their home modules
TRAIT_SLOTS = (
    "segment",
    "product",
    "valuation",
    "hesitation",
    "wait_draw",
    "price",
    "shipping_fee",
    "unit_cost",
    "shipping_cost",
    "existing",
    "consent",
    "return_probability",
    "hazard",
    "return_decay",
    "help_value",
    "tolerance",
    "retarget_lift",
    "base_appeal",
    "surplus_scale",
    "dwell_base",
    "edit_rate",
    "substitute_rate",
)
TERM_SLOTS = (
    "revenue",
    "cost_of_goods",
    "shipping",
    "concession_cost",
    "voucher_liability",
    "agent_cost",
    "future_value",
)
COLUMN_SLOTS = (
    "cart_value",
    "shipping_fee",
    "margin_rate",
    "checkout_step",
    "journey_step",
    "away",
    "consent",
    "interruptions",
    "offer_active",
    "agents_busy",
    "returning_visitor",
    "visit_index",
    "exit_intent",
    "dwell_time",
    "steps_at_stage",
    "cart_edits",
    "substitute_views",
)
(
    _SEGMENT,
    _PRODUCT,
    _VALUATION,
    _HESITATION,
    _WAIT_DRAW,
    _PRICE,
    _FEE,
    _UNIT_COST,
    _SHIP_COST,
    _EXISTING,
    _CONSENT_TRAIT,
    _RETURN_PROB,
    _HAZARD,
    _DECAY,
    _HELP,
    _TOLERANCE,
    _LIFT,
    _BASE_APPEAL,
    _SCALE,
    _DWELL_BASE,
    _EDIT_RATE,
    _SUBSTITUTE_RATE,
) = range(len(TRAIT_SLOTS))
_TERMS_AT = len(TRAIT_SLOTS)
_REVENUE, _COGS, _SHIPPING, _CONCESSION, _LIABILITY, _AGENT_COST, _FUTURE = range(
    _TERMS_AT, _TERMS_AT + len(TERM_SLOTS)
)
_COLUMNS_AT = _TERMS_AT + len(TERM_SLOTS)
(
    _C_CART,
    _C_FEE,
    _C_MARGIN,
    _C_STEP,
    _C_JOURNEY,
    _C_AWAY,
    _C_CONSENT,
    _C_INTERRUPTIONS,
    _C_OFFER,
    _C_BUSY,
    _C_RETURNING,
    _C_VISIT,
    _C_INTENT,
    _C_DWELL,
    _C_AT_STAGE,
    _C_EDITS,
    _C_SUBSTITUTES,
) = range(_COLUMNS_AT, _COLUMNS_AT + len(COLUMN_SLOTS))
_OFFERED_AT = _COLUMNS_AT + len(COLUMN_SLOTS)  # first ``offered_<name>`` column
_GATED_FIRST, _GATED_LAST = _C_RETURNING, _C_SUBSTITUTES  # the consent-gated columns
LAYOUT_SIZE = _OFFERED_AT + 1


# the shoppers' draw: ``segments`` (len(SEGMENT_SLOTS), n_segments), ``products``
# (len(PRODUCT_SLOTS), n_products), ``draw_params`` (DRAW_PARAMS), the value ``rule`` of
# each action (VALUE_RULES)
SEGMENT_SLOTS = (
    "valuation",
    "valuation_spread",
    "hesitation",
    "hesitation_spread",
    "abandon_hazard",
    "return_probability",
    "return_decay",
    "help_value",
    "tolerance",
    "retarget_lift",
    "price_sensitivity",
    "shipping_sensitivity",
    "speed_sensitivity",
    "gift_sensitivity",
    "voucher_sensitivity",
    "consent_rate",
)
(
    _S_VALUATION,
    _S_VALUATION_SPREAD,
    _S_HESITATION,
    _S_HESITATION_SPREAD,
    _S_HAZARD,
    _S_RETURN,
    _S_DECAY,
    _S_HELP,
    _S_TOLERANCE,
    _S_LIFT,
    _S_PRICE,
    _S_SHIPPING,
    _S_SPEED,
    _S_GIFT,
    _S_VOUCHER,
    _S_CONSENT,
) = range(len(SEGMENT_SLOTS))
PRODUCT_SLOTS = ("price", "unit_cost", "shipping_fee", "shipping_cost")
_P_PRICE, _P_UNIT_COST, _P_FEE, _P_SHIP_COST = range(len(PRODUCT_SLOTS))
DRAW_PARAMS = (
    "existing_customer_share",
    "existing_customer_appeal",
    "new_shopper_appeal",
    "appeal_scale",
)
_D_EXISTING_SHARE, _D_EXISTING_APPEAL, _D_NEW_APPEAL, _D_APPEAL_SCALE = range(len(DRAW_PARAMS))
# what an action is worth: nothing (wait, a live agent: it acts on hesitation), a share of
# the price, a fixed amount off, the shipping fee waived, faster delivery, a gift, a voucher
VALUE_RULES = ("none", "price_share", "price_off", "fee_waived", "speed", "gift", "voucher")
NO_VALUE, PRICE_SHARE, PRICE_OFF, FEE_WAIVED, SPEED, GIFT, VOUCHER = range(len(VALUE_RULES))


@njit(cache=True, error_model="numpy", inline="always")
def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, error_model="numpy", inline="always")
def eligible(
    in_journey,
    room,
    away,
    consent,
    in_chat,
    onsite,
    email,
    once,
    agent,
    static_ok,
    offered,
    cost,
    budget,
):
    """Whether an action may be offered to a shopper now, the live-agent desk apart (the
    rules: :mod:`envs.eligibility`). The shopper: ``in_journey``, with ``room`` under the
    contact cap, ``away`` or on the site, tracking ``consent``, ``in_chat`` with an agent;
    the action: its channel (``onsite``, ``email``), ``once`` per shopper, a live ``agent``;
    for this shopper: ``static_ok`` (minimum cart, margin floor), ``offered`` before, its
    expected ``cost``; ``budget`` what is left of the campaign budget (inf: none).

    Scalars only: a kernel that passed its arrays here would pay their reference counts
    at every shopper and action, ten times the rule itself."""
    if not (in_journey and room and static_ok):
        return False
    if not ((onsite and not away) or (email and away and consent)):
        return False
    if (once and offered) or (agent and in_chat):
        return False
    return not (math.isfinite(budget) and not cost <= budget)


@njit(cache=True, error_model="numpy")
def busy_agents(ints):
    """Live agents in a chat now."""
    busy = 0
    for i in range(ints.shape[1]):
        if ints[_AGENT_UNTIL, i] > ints[_T, i]:
            busy += 1
    return busy


@njit(cache=True, error_model="numpy")
def observe(rows, obs, floats, ints, flags, traits, action_flags, params, layout, capacity):
    """Write the observation of shoppers ``rows`` into ``obs`` ``(n, n_features)``."""
    horizon = params[_HORIZON]
    max_offers = params[_MAX_OFFERS]
    offered_at = layout[_OFFERED_AT]
    trait_price = layout[_PRICE]
    col_cart = layout[_C_CART]
    col_fee = layout[_C_FEE]
    trait_fee = layout[_FEE]
    col_margin = layout[_C_MARGIN]
    trait_unit_cost = layout[_UNIT_COST]
    col_step = layout[_C_STEP]
    col_journey = layout[_C_JOURNEY]
    col_away = layout[_C_AWAY]
    col_consent = layout[_C_CONSENT]
    col_interruptions = layout[_C_INTERRUPTIONS]
    col_offer = layout[_C_OFFER]
    col_busy = layout[_C_BUSY]
    trait_existing = layout[_EXISTING]
    col_returning = layout[_C_RETURNING]
    col_visit = layout[_C_VISIT]
    max_visits = params[_MAX_VISITS]
    col_intent = layout[_C_INTENT]
    col_dwell = layout[_C_DWELL]
    col_at_stage = layout[_C_AT_STAGE]
    col_edits = layout[_C_EDITS]
    col_substitutes = layout[_C_SUBSTITUTES]
    gated_first = layout[_GATED_FIRST]
    gated_last = layout[_GATED_LAST]
    share = min(1.0, busy_agents(ints) / capacity)
    contact_cap = max(1.0, max_offers)
    for i in rows:
        price = traits[trait_price, i]
        t = ints[_T, i]
        visit = ints[_VISIT, i]
        consent = flags[_CONSENT, i]
        obs[i, col_cart] = price / 100.0
        obs[i, col_fee] = traits[trait_fee, i] / 10.0
        obs[i, col_margin] = 1.0 - traits[trait_unit_cost, i] / price
        obs[i, col_step] = ints[_STAGE, i] / 3.0
        obs[i, col_journey] = t / horizon
        obs[i, col_away] = 1.0 if flags[_AWAY, i] else 0.0
        obs[i, col_consent] = 1.0 if consent else 0.0
        obs[i, col_interruptions] = ints[_INTERRUPTIONS, i] / contact_cap
        obs[i, col_offer] = 1.0 if ints[_OFFER_UNTIL, i] > t else 0.0
        obs[i, col_busy] = share
        if consent:
            returning = traits[trait_existing, i] > 0.5 or visit > 1
            obs[i, col_returning] = 1.0 if returning else 0.0
            obs[i, col_visit] = visit / max_visits
            obs[i, col_intent] = 1.0 if flags[_EXIT_INTENT, i] else 0.0
            obs[i, col_dwell] = floats[_DWELL, i]
            obs[i, col_at_stage] = ints[_STEPS_AT_STAGE, i] / horizon
            obs[i, col_edits] = ints[_EDITS, i] / 10.0
            obs[i, col_substitutes] = ints[_SUBSTITUTES, i] / 10.0
        else:
            for column in range(gated_first, gated_last + 1):
                obs[i, column] = 0.0
        for c in range(1, action_flags.shape[1]):
            obs[i, offered_at + c - 1] = 1.0 if action_flags[_OFFERED, c, i] else 0.0


@njit(cache=True, error_model="numpy")
def start(
    rows,
    arriving,
    draw_traits,
    draw_perceived,
    draw_discount,
    draw_expected,
    draw_static_ok,
    floats,
    ints,
    flags,
    traits,
    values,
    action_flags,
    expires,
    layout,
):
    """New shoppers, drawn in ``draw_*`` (their column j), start their journeys in
    ``rows[j]``; the row is in a journey if ``arriving[j]``, else waits to arrive."""
    trait_return_prob = layout[_RETURN_PROB]
    trait_consent = layout[_CONSENT_TRAIT]
    for j in range(rows.shape[0]):
        i = rows[j]
        for r in range(traits.shape[0]):
            traits[r, i] = draw_traits[r, j]
        for c in range(values.shape[1]):
            values[_PERCEIVED, c, i] = draw_perceived[c, j]
            values[_DISCOUNT, c, i] = draw_discount[c, j]
            values[_EXPECTED_COST, c, i] = draw_expected[c, j]
            action_flags[_STATIC_OK, c, i] = draw_static_ok[c, j]
            action_flags[_OFFERED, c, i] = False
            expires[c, i] = 0
        for r in range(ints.shape[0]):
            ints[r, i] = 0
        ints[_VISIT, i] = 1
        floats[_ANNOYANCE, i] = 0.0
        floats[_INTENT_APPEAL, i] = 0.0
        floats[_DWELL, i] = 0.0
        floats[_RETURN_CHANCE, i] = draw_traits[trait_return_prob, j]
        flags[_ALIVE, i] = arriving[j]
        flags[_AWAY, i] = False
        flags[_EXIT_INTENT, i] = False
        flags[_HARASSED, i] = False
        flags[_REWARDED, i] = False
        flags[_CONSENT, i] = draw_traits[trait_consent, j] > 0.5


@njit(cache=True, error_model="numpy")
def masks(out, wanting, ints, flags, values, action_flags, table, params, budget, free):
    """Eligible actions ``out`` ``(n, n_actions)`` with ``budget`` left and ``free`` live
    agents, and the shoppers ``wanting`` an agent before the desk's capacity: the free
    agents go to the first of them, in row order."""
    max_offers = params[_MAX_OFFERS]
    queued = 0
    for i in range(out.shape[0]):
        in_journey = flags[_ALIVE, i]
        if not in_journey:  # out of a journey: wait only
            out[i, 0] = True
            for c in range(1, out.shape[1]):
                out[i, c] = False
            wanting[i] = False
            continue
        room = ints[_INTERRUPTIONS, i] < max_offers
        away = flags[_AWAY, i]
        consent = flags[_CONSENT, i]
        in_chat = ints[_AGENT_UNTIL, i] > ints[_T, i]
        out[i, 0] = True
        want = False
        for c in range(1, out.shape[1]):
            ok = eligible(
                in_journey,
                room,
                away,
                consent,
                in_chat,
                table[_ONSITE, c] != 0.0,
                table[_EMAIL, c] != 0.0,
                table[_ONCE, c] != 0.0,
                table[_AGENT, c] != 0.0,
                action_flags[_STATIC_OK, c, i],
                action_flags[_OFFERED, c, i],
                values[_EXPECTED_COST, c, i],
                budget,
            )
            out[i, c] = ok
            want = want or (ok and table[_AGENT, c] != 0.0)
        wanting[i] = want
        if want:
            queued += 1
            if queued > free:
                for c in range(1, out.shape[1]):
                    if table[_AGENT, c] != 0.0:
                        out[i, c] = False


@njit(cache=True, error_model="numpy")
def step(
    rows,
    a,
    u,
    floats,
    ints,
    flags,
    traits,
    values,
    action_flags,
    expires,
    table,
    params,
    layout,
    budget,
    capacity,
    terms,
    spend,
    spent_rows,
    outcomes,
    applied,
    event,
    obs,
):
    """Advance every shopper one decision step (see :mod:`envs.core`), in place.

    ``rows`` all the rows (``arange(n)``), ``a`` the actions sent, ``u`` (4, n) the step's
    uniforms; ``budget`` what is left of
    the campaign budget (inf: none) and ``capacity`` the live agents. Writes the ledger
    ``terms`` and ``spend`` of the step (and ``spent_rows``, each shopper's spend summed
    over the actions), ``outcomes`` (see :data:`OUTCOMES`), the action
    ``applied``, the ``event`` and the observation ``obs`` of every shopper.

    The actions must be in range (:func:`out_of_range`). Returns ``(ended, rewarded,
    spent)``: the journeys ended, those of them that bought after their hesitation was
    rewarded, and the euros spent this step.
    """
    max_offers = params[_MAX_OFFERS]
    horizon = params[_HORIZON]
    dwell_cap = params[_DWELL_CAP]
    trait_help = layout[_HELP]
    session = params[_SESSION]
    term_agent_cost = layout[_AGENT_COST]
    term_concession = layout[_CONCESSION]
    trait_tolerance = layout[_TOLERANCE]
    opt_out = params[_OPT_OUT]
    trait_lift = layout[_LIFT]
    return_boost = params[_RETURN_BOOST]
    harass_return = params[_HARASS_RETURN]
    max_visits = params[_MAX_VISITS]
    trait_base_appeal = layout[_BASE_APPEAL]
    trait_scale = layout[_SCALE]
    annoy_w = params[_ANNOY_W]
    wait_penalty = params[_WAIT_PENALTY]
    commit = params[_COMMIT]
    buy_bias = params[_BUY_BIAS]
    trait_hazard = layout[_HAZARD]
    adv_bias = params[_ADV_BIAS]
    trait_price = layout[_PRICE]
    trait_fee = layout[_FEE]
    term_revenue = layout[_REVENUE]
    term_cogs = layout[_COGS]
    trait_unit_cost = layout[_UNIT_COST]
    term_shipping = layout[_SHIPPING]
    trait_ship_cost = layout[_SHIP_COST]
    term_liability = layout[_LIABILITY]
    term_future = layout[_FUTURE]
    retained_fv = params[_RETAINED_FV]
    annoyed_fv = params[_ANNOYED_FV]
    trait_decay = layout[_DECAY]
    trait_dwell_base = layout[_DWELL_BASE]
    trait_edit_rate = layout[_EDIT_RATE]
    trait_substitute_rate = layout[_SUBSTITUTE_RATE]
    n = a.shape[0]
    k = table.shape[1]
    free = capacity - busy_agents(ints)
    agents = np.flatnonzero(table[_AGENT] != 0.0)  # the live-agent columns
    queued = 0
    ended = 0
    rewarded = 0
    spent = 0.0
    for i in range(n):
        t = ints[_T, i]
        sent = a[i]
        for term in range(terms.shape[0]):
            terms[term, i] = 0.0
        for d in range(k):
            spend[d, i] = 0.0
        if not flags[_ALIVE, i]:
            # out of a journey (not arrived yet, or ended): the action is played as wait
            # and nothing else moves; the writes below are those of the full step for
            # such a row, without the work that cannot change it
            outcomes[_INELIGIBLE, i] = sent != 0
            outcomes[_OPTED_OUT, i] = False
            outcomes[_TERMINATED, i] = False
            outcomes[_TRUNCATED, i] = False
            applied[i] = 0
            event[i] = NOTHING
            expires[0, i] = t + np.int64(table[_EXPIRY, 0])
            floats[_ANNOYANCE, i] += table[_ANNOY, 0]
            floats[_DWELL, i] = 0.0
            terms[term_concession, i] = table[_SEND_COST, 0]
            spend[0, i] = table[_SEND_COST, 0]
            spent_rows[i] = spend[0, i]
            spent += spent_rows[i]
            continue
        # 1. the merchant's move
        alive = flags[_ALIVE, i]
        room = ints[_INTERRUPTIONS, i] < max_offers
        away = flags[_AWAY, i]
        consent = flags[_CONSENT, i]
        in_chat = ints[_AGENT_UNTIL, i] > t
        ok = sent != 0 and eligible(
            alive,
            room,
            away,
            consent,
            in_chat,
            table[_ONSITE, sent] != 0.0,
            table[_EMAIL, sent] != 0.0,
            table[_ONCE, sent] != 0.0,
            table[_AGENT, sent] != 0.0,
            action_flags[_STATIC_OK, sent, i],
            action_flags[_OFFERED, sent, i],
            values[_EXPECTED_COST, sent, i],
            budget,
        )
        want = ok and table[_AGENT, sent] != 0.0
        for g in agents:
            if want:
                break
            want = eligible(
                alive,
                room,
                away,
                consent,
                in_chat,
                table[_ONSITE, g] != 0.0,
                table[_EMAIL, g] != 0.0,
                table[_ONCE, g] != 0.0,
                True,
                action_flags[_STATIC_OK, g, i],
                action_flags[_OFFERED, g, i],
                values[_EXPECTED_COST, g, i],
                budget,
            )
        if want:
            queued += 1  # the desk serves the shoppers wanting an agent in row order
        if table[_AGENT, sent] != 0.0 and (not want or queued > free):
            ok = False
        act = ok
        outcomes[_INELIGIBLE, i] = sent != 0 and not ok
        c = sent if act else 0
        applied[i] = c
        is_agent = table[_AGENT, c] != 0.0
        if act:
            action_flags[_OFFERED, c, i] = True
        until = t + np.int64(table[_EXPIRY, c])
        expires[c, i] = until
        if act and not is_agent and until > ints[_OFFER_UNTIL, i]:
            ints[_OFFER_UNTIL, i] = until
        if act:
            ints[_INTERRUPTIONS, i] += 1
        help_value = traits[trait_help, i]
        agent_now = act and is_agent
        if agent_now:
            floats[_ANNOYANCE, i] += max(0.0, 1.0 - help_value)
            ints[_AGENT_UNTIL, i] = t + np.int64(session)
        else:
            floats[_ANNOYANCE, i] += table[_ANNOY, c]
        terms[term_agent_cost, i] = table[_SEND_COST, c] if is_agent else 0.0
        terms[term_concession, i] = 0.0 if is_agent else table[_SEND_COST, c]
        spend[c, i] = table[_SEND_COST, c]
        if act and (flags[_EXIT_INTENT, i] or away or ints[_VISIT, i] > 1):
            flags[_REWARDED, i] = True
        tolerance = traits[trait_tolerance, i]
        annoyance = floats[_ANNOYANCE, i]
        emailed = act and table[_EMAIL, c] != 0.0
        opted_out = emailed and annoyance > 0.5 * tolerance and u[1, i] < opt_out
        outcomes[_OPTED_OUT, i] = opted_out
        if opted_out:
            flags[_CONSENT, i] = False
        on_site = alive and not away
        harass = on_site and act and annoyance > tolerance

        # 2. shoppers who left: come back, or end the journey
        returns = False
        abandoned = False
        if alive and away:
            chance = floats[_RETURN_CHANCE, i]
            if emailed:
                chance = chance + traits[trait_lift, i]
            if flags[_WAITS, i]:
                chance = chance + return_boost
            if flags[_HARASSED, i]:
                chance = chance * harass_return
            if ints[_VISIT, i] >= max_visits:
                chance = 0.0
            returns = u[0, i] < chance
            abandoned = not returns

        # 3. shoppers on the site
        value = 0.0
        for d in range(k):
            if expires[d, i] > t:
                value += values[_PERCEIVED, d, i]
        agent_on = ints[_AGENT_UNTIL, i] > t
        z = traits[trait_base_appeal, i] + value * traits[trait_scale, i]
        if agent_on:
            z = z + help_value
        z -= annoy_w * annoyance
        if flags[_WAITS, i] and value == 0.0 and not agent_on:
            z -= wait_penalty
        deciding = on_site and not harass
        intent = deciding and flags[_EXIT_INTENT, i]
        leaves = intent and u[0, i] >= _sigmoid(z - floats[_INTENT_APPEAL, i] - commit)
        free_to_move = deciding and not flags[_EXIT_INTENT, i]
        stage = ints[_STAGE, i]
        buys = free_to_move and stage == 3 and u[0, i] < _sigmoid(z + buy_bias)
        new_intent = (
            free_to_move
            and not buys
            and u[0, i] > 1.0 - 2.0 * traits[trait_hazard, i] * _sigmoid(-z)
        )
        advances = (
            free_to_move
            and not buys
            and not new_intent
            and stage < 3
            and u[1, i] < _sigmoid(z + adv_bias)
        )

        # 4. books and state
        if buys:
            discounts = 0.0
            other = 0.0
            liability = 0.0
            for d in range(k):
                if expires[d, i] > t:
                    discounts += values[_DISCOUNT, d, i]
                    other += table[_PURCHASE_COST, d]
                    liability += table[_VOUCHER, d]
                    spend[d, i] += values[_DISCOUNT, d, i] + (
                        table[_PURCHASE_COST, d] + table[_VOUCHER, d]
                    )
            price = traits[trait_price, i]
            fee = traits[trait_fee, i]
            terms[term_revenue, i] += price + fee
            terms[term_cogs, i] += traits[trait_unit_cost, i]
            terms[term_shipping, i] += traits[trait_ship_cost, i]
            terms[term_concession, i] += min(discounts, price + fee) + other
            terms[term_liability, i] += liability
            terms[term_future, i] += retained_fv
        row_spent = 0.0
        for d in range(k):
            row_spent += spend[d, i]
        spent_rows[i] = row_spent
        spent += row_spent
        if harass and annoyed_fv != 0.0:
            terms[term_future, i] -= annoyed_fv
        if harass:
            flags[_HARASSED, i] = True
        flags[_AWAY, i] = (away and not returns) or leaves or harass
        flags[_EXIT_INTENT, i] = (flags[_EXIT_INTENT, i] and not intent) or new_intent
        if new_intent:
            floats[_INTENT_APPEAL, i] = z
        if returns:
            floats[_RETURN_CHANCE, i] = floats[_RETURN_CHANCE, i] * traits[trait_decay, i]
            ints[_VISIT, i] += 1
            ints[_STAGE, i] = min(stage, 1)
            ints[_STEPS_AT_STAGE, i] = 0
        elif advances:
            ints[_STAGE, i] = stage + 1
            ints[_STEPS_AT_STAGE, i] = 0
        elif deciding:
            ints[_STEPS_AT_STAGE, i] += 1
        if deciding:
            floats[_DWELL, i] = min(traits[trait_dwell_base, i] * (0.5 + u[2, i]), dwell_cap)
            if u[3, i] < traits[trait_edit_rate, i]:
                ints[_EDITS, i] += 1
            if u[3, i] > 1.0 - traits[trait_substitute_rate, i]:
                ints[_SUBSTITUTES, i] += 1
        else:
            floats[_DWELL, i] = 0.0
        if alive:
            ints[_T, i] = t + 1

        terminated = buys or abandoned
        truncated = alive and not terminated and ints[_T, i] >= horizon
        outcomes[_TERMINATED, i] = terminated
        outcomes[_TRUNCATED, i] = truncated
        # the events are exclusive: each shopper is in one branch of the step
        if buys:
            event[i] = PURCHASE
        elif new_intent:
            event[i] = EXIT_INTENT
        elif leaves:
            event[i] = LEFT
        elif harass:
            event[i] = HARASSED
        elif returns:
            event[i] = RETURNED
        elif abandoned:
            event[i] = ABANDONED
        else:
            event[i] = NOTHING
        if terminated or truncated:
            flags[_ALIVE, i] = False
            ints[_AGENT_UNTIL, i] = 0  # a finished journey frees its agent
            ended += 1
            if buys and flags[_REWARDED, i]:
                rewarded += 1

    observe(rows, obs, floats, ints, flags, traits, action_flags, params, layout, capacity)
    return ended, rewarded, spent


@njit(cache=True, error_model="numpy")
def out_of_range(a, k):
    """Whether some action of ``a`` is not in ``[0, k)``."""
    for i in range(a.shape[0]):  # noqa: SIM110 (numba compiles no generator for any())
        if a[i] < 0 or a[i] >= k:
            return True
    return False


@njit(cache=True, error_model="numpy")
def draw(
    u,
    normals,
    gamma,
    segments,
    products,
    seg_cdf,
    prod_cdf,
    draw_params,
    rule,
    magnitude,
    extra_cost,
    min_cart,
    margin_floor,
    layout,
    traits,
    perceived,
    discount,
    expected_cost,
    static_ok,
):
    """Shoppers from their random numbers (the model: :mod:`envs.shoppers`), in place.

    ``u`` (5, n) uniforms, ``normals`` (2, n), ``gamma`` (n,) Gamma(4, 1/4) draws, one
    column per shopper; writes ``traits`` (every row of ``TRAIT_SLOTS``) and, per action,
    ``perceived``, ``discount``, ``expected_cost`` and ``static_ok``.
    """
    trait_segment = layout[_SEGMENT]
    trait_product = layout[_PRODUCT]
    trait_price = layout[_PRICE]
    trait_unit_cost = layout[_UNIT_COST]
    trait_fee = layout[_FEE]
    trait_ship_cost = layout[_SHIP_COST]
    trait_existing = layout[_EXISTING]
    trait_consent = layout[_CONSENT_TRAIT]
    trait_valuation = layout[_VALUATION]
    trait_hesitation = layout[_HESITATION]
    trait_hazard = layout[_HAZARD]
    trait_return = layout[_RETURN_PROB]
    trait_decay = layout[_DECAY]
    trait_help = layout[_HELP]
    trait_tolerance = layout[_TOLERANCE]
    trait_lift = layout[_LIFT]
    trait_wait_draw = layout[_WAIT_DRAW]
    trait_scale = layout[_SCALE]
    trait_base_appeal = layout[_BASE_APPEAL]
    trait_dwell_base = layout[_DWELL_BASE]
    trait_edit_rate = layout[_EDIT_RATE]
    trait_substitute_rate = layout[_SUBSTITUTE_RATE]
    existing_share = draw_params[_D_EXISTING_SHARE]
    existing_appeal = draw_params[_D_EXISTING_APPEAL]
    new_appeal = draw_params[_D_NEW_APPEAL]
    appeal_scale = draw_params[_D_APPEAL_SCALE]
    for j in range(u.shape[1]):
        s = 0
        for b in range(seg_cdf.shape[0] - 1):
            if u[0, j] > seg_cdf[b]:
                s += 1
        q = 0
        for b in range(prod_cdf.shape[0] - 1):
            if u[1, j] > prod_cdf[b]:
                q += 1
        price = products[_P_PRICE, q]
        fee = products[_P_FEE, q]
        unit_cost = products[_P_UNIT_COST, q]
        ship_cost = products[_P_SHIP_COST, q]
        existing = u[2, j] < existing_share
        v = segments[_S_VALUATION, s] * math.exp(segments[_S_VALUATION_SPREAD, s] * normals[0, j])
        h = segments[_S_HESITATION, s] + segments[_S_HESITATION_SPREAD, s] * normals[1, j]
        help_value = segments[_S_HELP, s]
        scale = 1.0 / (appeal_scale * price)
        offset = existing_appeal if existing else new_appeal
        base = (v - 1.0) * price - segments[_S_SHIPPING, s] * fee
        traits[trait_segment, j] = s
        traits[trait_product, j] = q
        traits[trait_price, j] = price
        traits[trait_unit_cost, j] = unit_cost
        traits[trait_fee, j] = fee
        traits[trait_ship_cost, j] = ship_cost
        traits[trait_existing, j] = 1.0 if existing else 0.0
        traits[trait_consent, j] = 1.0 if u[3, j] < segments[_S_CONSENT, s] else 0.0
        traits[trait_valuation, j] = v
        traits[trait_hesitation, j] = h
        traits[trait_hazard, j] = segments[_S_HAZARD, s]
        traits[trait_return, j] = segments[_S_RETURN, s]
        traits[trait_decay, j] = segments[_S_DECAY, s]
        traits[trait_help, j] = help_value
        traits[trait_tolerance, j] = segments[_S_TOLERANCE, s] * gamma[j]
        traits[trait_lift, j] = segments[_S_LIFT, s]
        traits[trait_wait_draw, j] = u[4, j]
        traits[trait_scale, j] = scale
        traits[trait_base_appeal, j] = base * scale - h + offset
        # visible signals: hesitant shoppers and novices linger and edit, low valuers compare
        traits[trait_dwell_base, j] = 0.8 * math.exp(0.3 * h + 0.4 * max(help_value, 0.0))
        traits[trait_edit_rate, j] = 0.05 + 0.15 / (1.0 + math.exp(-h))
        surplus = min(max((v - 1.0) * 10.0, -50.0), 50.0)
        traits[trait_substitute_rate, j] = 0.3 / (1.0 + math.exp(surplus))
        for a in range(rule.shape[0]):
            m = magnitude[a]
            worth = 0.0
            given = 0.0
            if rule[a] == PRICE_SHARE:
                given = m * price
                worth = segments[_S_PRICE, s] * given
            elif rule[a] == PRICE_OFF:
                given = min(m, price)
                worth = segments[_S_PRICE, s] * given
            elif rule[a] == FEE_WAIVED:
                given = fee
                worth = segments[_S_SHIPPING, s] * fee
            elif rule[a] == SPEED:
                worth = segments[_S_SPEED, s] * price
            elif rule[a] == GIFT:
                worth = segments[_S_GIFT, s] * m
            elif rule[a] == VOUCHER:
                worth = segments[_S_VOUCHER, s] * m
            expected = given + extra_cost[a]
            margin_left = price + fee - unit_cost - ship_cost - expected
            perceived[a, j] = worth
            discount[a, j] = given
            expected_cost[a, j] = expected
            static_ok[a, j] = a == 0 or (
                price >= min_cart[a] and margin_left >= margin_floor[a] * price
            )
