/** Where Slack delivers events over HTTP, on the admin listener (a module of its own so routing it doesn't load Bolt). */
export const SLACK_EVENTS_PATH = '/slack/events';
