import { describe, expect, it } from "vitest";
import { Masker } from "../../runbooks/engine/mask.ts";

describe("secret masking", () => {
  const masker = new Masker(["s3cr3t-value", "s3cr3t"]);

  it("replaces known secret values anywhere in text, longest first", () => {
    expect(masker.text("password=s3cr3t-value and s3cr3t")).toBe("password=**** and ****");
  });

  it("masks the password of any URL, known or not", () => {
    expect(masker.text("connect postgres://ops:hunter2@10.0.0.1:5432/trading failed")).toBe(
      "connect postgres://ops:****@10.0.0.1:5432/trading failed",
    );
  });

  it("masks credential-looking keys in structured values and leaves the rest", () => {
    expect(
      masker.value({ reason: "drill", adminKey: "abc", nested: { botToken: "x1", chatId: "42" }, list: ["s3cr3t"], lagBytes: 12 }),
    ).toEqual({ reason: "drill", adminKey: "****", nested: { botToken: "****", chatId: "42" }, list: ["****"], lagBytes: 12 });
  });
});
