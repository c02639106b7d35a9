// The event bodies f/marketing/handle_user_event accepts. Generated from
// f/marketing/user_events.schema.json by scripts/export_ts_types.mjs: do not edit.

/**
 * The body of one webhook call to f/marketing/handle_user_event.
 */
export type UserLifecycleEvent = UserRegistered | UserUpgraded | UserChurned;
export type Event = "user.registered";
/**
 * The user's email
 */
export type Email = string;
/**
 * Full name; null when unknown; cut to 191 characters
 */
export type Name = string | null;
/**
 * The plan signed up for, e.g. free, pro
 */
export type Plan = string;
/**
 * Where the signup came from, e.g. google-ads; cut to 191 characters
 */
export type Source = string;
/**
 * Whether the user agreed to marketing email
 */
export type Marketingconsent = boolean;
/**
 * When it happened: ISO 8601 with a time zone, e.g. 2026-11-26T10:00:00Z
 */
export type Timestamp = string;
export type Event1 = "user.upgraded";
/**
 * The user's email
 */
export type Email1 = string;
export type Previousplan = string;
export type Newplan = string;
/**
 * When it happened: ISO 8601 with a time zone, e.g. 2026-11-26T10:00:00Z
 */
export type Timestamp1 = string;
export type Event2 = "user.churned";
/**
 * The user's email
 */
export type Email2 = string;
/**
 * Why the user left; null when unknown; cut to 2000 characters
 */
export type Reason = string | null;
/**
 * When it happened: ISO 8601 with a time zone, e.g. 2026-11-26T10:00:00Z
 */
export type Timestamp2 = string;

/**
 * A user signed up.
 */
export interface UserRegistered {
  event: Event;
  email: Email;
  name: Name;
  plan: Plan;
  source: Source;
  marketingConsent: Marketingconsent;
  timestamp: Timestamp;
}
/**
 * A user moved to another plan.
 */
export interface UserUpgraded {
  event: Event1;
  email: Email1;
  previousPlan: Previousplan;
  newPlan: Newplan;
  timestamp: Timestamp1;
}
/**
 * A user left.
 */
export interface UserChurned {
  event: Event2;
  email: Email2;
  reason: Reason;
  timestamp: Timestamp2;
}
