-- Back to release 1.0.0's schema: the orders stay, their client ids and fills go.
DROP TABLE fills;
ALTER TABLE orders DROP COLUMN client_order_id;
