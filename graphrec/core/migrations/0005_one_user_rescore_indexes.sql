-- One user's rescore (graphrec recommend --user) reads only the rows around the user, but three of its reads
-- scanned a whole table, which at ten times the demo scale (50,000 users, 1M goods) cost most of its second:
-- the fresh goods created since the daily run it rescores against (the run's own fresh pool covers the older
-- ones), the recent saves behind the popularity top-up, and the collections holding one of the user's goods.

CREATE INDEX IF NOT EXISTS goods_created_live ON goods (created_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS saves_saved_at ON saves (saved_at);
CREATE INDEX IF NOT EXISTS collection_goods_good ON collection_goods (good_id);
