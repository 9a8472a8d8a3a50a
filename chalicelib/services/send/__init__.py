"""The send wing: a message's chunks and a recall's or edit's replacements, sent to APNs.

| room              | what                                                                      |
|-------------------|---------------------------------------------------------------------------|
| ``chunk.py``      | the story of one chunk attempt, top to bottom                             |
| ``replace.py``    | the story of one replacement job (``replace_plan.py``: its plan)          |
| ``attempt.py``    | the attempt runner: claim, busy/done/takeover, checkpointed run, permits  |
| ``checkpoint.py`` | outcome pages written as they come                                        |
| ``plan.py``       | who is skipped, who is sent what (policy adapter, render)                 |
| ``badges.py``     | +1 per message counted, -1 per recall, saved before sending               |
| ``gateway.py``    | the one door to APNs (credentials, payload, concurrency, 403, pause)      |
| ``settle.py``     | APNs' answer through the outcome table                                    |
| ``retry.py``      | the retry policy of what APNs did not take                                |
| ``deliver.py``    | the concurrent send loops of both stories                                 |
| ``wing.py``       | the rooms, built once per container                                       |

The store executes its own calls (``store/send_ledger.py``, ``store/badges.py``) and answers domain
values (``models/ledger.py``); nothing here sees DynamoDB JSON.
"""
