/** Where the Bot Framework delivers Teams activities, on the admin listener (a module of its own so routing it doesn't load the Teams SDK). */
export const TEAMS_MESSAGES_PATH = '/teams/messages';
