-- Release 1.1.0: idempotent order placement and the fills of each order.
ALTER TABLE orders ADD COLUMN client_order_id text UNIQUE;
CREATE TABLE fills (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES orders (id),
  quantity numeric NOT NULL CHECK (quantity > 0),
  price numeric NOT NULL,
  filled_at timestamptz NOT NULL DEFAULT now()
);
