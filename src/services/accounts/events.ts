/** Events the accounts service publishes, keyed by account id. */
export const ACCOUNT_CREATED = 'accounts.account.created'
export const ACCOUNT_CLOSED = 'accounts.account.closed'
export const PROFILE_CREATED = 'accounts.profile.created'
export const PROFILE_UPDATED = 'accounts.profile.updated'
/** Consumers delete what belongs to the profile (history, resume positions, ratings…). */
export const PROFILE_DELETED = 'accounts.profile.deleted'

export interface AccountCreated {
  accountId: string
  country: string
  role: string
}
export interface AccountClosed {
  accountId: string
  profileIds: string[]
}
export interface ProfileChanged {
  accountId: string
  profileId: string
  kids: boolean
  maturityLimit: string
  language: string
}
export interface ProfileDeleted {
  accountId: string
  profileId: string
}
