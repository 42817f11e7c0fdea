"""Everything of seenext that is not transport: store, identity, training, ranking, rules.

Nothing here imports grpc or generated code, so another transport can reuse it unchanged.
"""
