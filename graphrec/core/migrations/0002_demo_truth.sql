-- The demo generator's planted answer (each user's true interests, each good's style), kept apart from the
-- source tables so evaluation can score an oracle and the pipeline never reads it by accident.
CREATE TABLE demo_user_interests (
    user_id bigint NOT NULL,
    style integer NOT NULL,
    weight real NOT NULL,
    PRIMARY KEY (user_id, style)
);

CREATE TABLE demo_good_styles (
    good_id bigint PRIMARY KEY,
    style integer NOT NULL
);
