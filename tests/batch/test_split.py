"""`_split_by_channel`: the extract's rows per channel, in file order, one chunk per column."""

from __future__ import annotations

import polars as pl

from pipelines.batch.day import _split_by_channel


def test_parts_are_the_channels_rows_in_order_and_the_input_is_consumed() -> None:
    chunks = [
        pl.DataFrame(
            {
                "payment_id": [f"P{start + i:020d}" for i in range(6)],
                "channel": ["alipay", "wechatpay", "alipay", "stripe", "alipay", "wechatpay"],
                "amount_minor": [start + i for i in range(6)],
            }
        )
        for start in (0, 6, 12)
    ]
    frame = pl.concat(chunks, rechunk=False)
    assert frame.n_chunks() == 3
    columns = frame.get_columns()
    parts = _split_by_channel(columns, ["alipay", "stripe", "wechatpay", "adyen"])
    assert columns == []
    for channel, part in parts.items():
        assert part.equals(frame.filter(pl.col("channel") == channel)), channel
        assert set(part.n_chunks("all")) == {1}
    assert parts["adyen"].height == 0 and parts["adyen"].schema == frame.schema
    assert parts["alipay"]["amount_minor"].to_list() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
