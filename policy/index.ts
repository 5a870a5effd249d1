/**
 * The tradeops policy pack. `pulumi preview --policy-pack policy` loads this file; the policies
 * themselves live in policies.ts so tests can run them without starting a policy server.
 */
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("tradeops", { enforcementLevel: "mandatory", policies });
